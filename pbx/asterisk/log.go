package asterisk

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/CyCoreSystems/ari/v5/client/native"
	"github.com/inconshreveable/log15"
)

// ariLogger is where the ari library's package-global log15 logger goes.
var ariLogger atomic.Pointer[slog.Logger]

// bridgeARILogs routes the ari library's log15 output to logger. The ari
// logger is global to the process, so the most recent backend wins; its
// records carry component=ari. It logs connection errors only, never
// request bodies.
func bridgeARILogs(logger *slog.Logger) {
	ariLogger.Store(logger.With("component", "ari"))
	native.Logger.SetHandler(log15.FuncHandler(func(r *log15.Record) error {
		l := ariLogger.Load()
		if l == nil {
			return nil
		}
		lvl := slog.LevelDebug
		switch r.Lvl {
		case log15.LvlCrit, log15.LvlError:
			// The library reports every failed reconnect attempt as an
			// error; pbxd's own connection loop reports the outage once.
			lvl = slog.LevelDebug
		case log15.LvlWarn:
			lvl = slog.LevelWarn
		case log15.LvlInfo:
			lvl = slog.LevelInfo
		}
		attrs := make([]any, 0, len(r.Ctx)+2)
		attrs = append(attrs, "ari_level", r.Lvl.String())
		for i := 0; i+1 < len(r.Ctx); i += 2 {
			k := fmt.Sprint(r.Ctx[i])
			if k == "error" {
				k = "err"
			}
			attrs = append(attrs, k, r.Ctx[i+1])
		}
		l.Log(context.Background(), lvl, r.Msg, attrs...)
		return nil
	}))
}
