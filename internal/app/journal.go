package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

// journalHandler prefixes every record with its syslog priority (<3> error,
// <4> warning, <6> info, <7> debug), which journald reads from a service's
// stderr (SyslogLevelPrefix=, on by default) and strips: without it every
// line is stored at info and `journalctl -p warning` shows nothing.
type journalHandler struct {
	inner slog.Handler // writes one record into out.buf
	out   *journalOut
}

// journalOut is shared by a handler and those derived from it (With,
// WithGroup): one record at a time is formatted into buf, then written
// prefixed.
type journalOut struct {
	mu  sync.Mutex
	buf bytes.Buffer
	w   io.Writer
}

func (o *journalOut) Write(p []byte) (int, error) { return o.buf.Write(p) }

// newJournalHandler builds the handler of newInner(w) with priority prefixes.
func newJournalHandler(w io.Writer, newInner func(io.Writer) slog.Handler) slog.Handler {
	out := &journalOut{w: w}
	return &journalHandler{inner: newInner(out), out: out}
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.buf.Reset()
	if err := h.inner.Handle(ctx, r); err != nil {
		return err
	}
	_, err := fmt.Fprintf(h.out.w, "<%d>%s", priority(r.Level), h.out.buf.Bytes())
	return err
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(as), out: h.out}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), out: h.out}
}

// priority maps a slog level onto syslog's.
func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	default:
		return 7
	}
}

// toJournal says whether w is the journal's stream: systemd sets
// JOURNAL_STREAM to its device and inode. A writer that is not a file
// (tests) is taken at the variable's word.
func toJournal(getenv func(string) string, w io.Writer) bool {
	js := getenv("JOURNAL_STREAM")
	if js == "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return true
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fmt.Sprintf("%d:%d", st.Dev, st.Ino) == js
}
