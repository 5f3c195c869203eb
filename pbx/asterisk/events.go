package asterisk

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pbxd/pbxd/pbx"
)

// pbxd reads the ARI events websocket itself instead of through the ari
// library: ari v5.3.1 panics, in a goroutine of its own that no caller can
// recover, on any event type it does not know, and Asterisk 22 sends types
// it does not know (ApplicationRegistered, ChannelTransfer...). This reader
// decodes only the endpoint events pbxd needs and ignores everything else.

// event is the part of an ARI event pbxd uses (events.json: Event,
// ContactStatusChange, PeerStatusChange, EndpointStateChange).
type event struct {
	Type     string `json:"type"`
	Endpoint struct {
		Technology string `json:"technology"`
		Resource   string `json:"resource"`
		State      string `json:"state"`
	} `json:"endpoint"`
	ContactInfo struct {
		URI           string `json:"uri"`
		ContactStatus string `json:"contact_status"`
		AOR           string `json:"aor"`
	} `json:"contact_info"`
	Peer struct {
		PeerStatus string `json:"peer_status"`
	} `json:"peer"`
}

// wanted are the event types decodeEvent decodes.
var wanted = map[string]bool{"ContactStatusChange": true, "PeerStatusChange": true, "EndpointStateChange": true}

// maxEventSize bounds one websocket message; ARI endpoint events are well
// under a kilobyte, channel events a few.
const maxEventSize = 1 << 20

// decodeEvent decodes one websocket message. ok is false (and err nil) for
// any event type pbxd does not use, whatever its shape; err is set for a
// message that is not a JSON object or a used type whose fields do not
// have their documented types.
func decodeEvent(b []byte) (ev event, ok bool, err error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return event{}, false, fmt.Errorf("decode event: %w", err)
	}
	if !wanted[head.Type] {
		return event{}, false, nil
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		return event{}, false, fmt.Errorf("decode %s: %w", head.Type, err)
	}
	return ev, true, nil
}

// eventConn is one open events websocket and its reader goroutine.
type eventConn struct {
	conn net.Conn
	done chan struct{} // closed when the reader stops
	once sync.Once

	mu      sync.Mutex
	readErr error
}

func (c *eventConn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// err is why the reader stopped.
func (c *eventConn) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readErr == nil {
		return errors.New("closed")
	}
	return c.readErr
}

// close says goodbye (a close frame, so Asterisk does not log "Web socket
// closed abruptly" at every pbxd stop), closes the socket and waits for
// the reader to stop.
func (c *eventConn) close() {
	c.once.Do(func() {
		_ = c.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_ = wsutil.WriteClientMessage(c.conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
		_ = c.conn.Close()
	})
	<-c.done
}

// eventsURL is the websocket URL for the node's application. The
// credentials go in an Authorization header (Asterisk accepts basic auth
// as well as api_key on the upgrade), so no secret sits in a URL that an
// error message or a proxy log could show.
func (n *node) eventsURL() string {
	q := url.Values{"app": {n.cfg.App}, "subscribeAll": {"false"}}
	return wsURL(n.cfg.URL) + "?" + q.Encode()
}

// dialEvents opens the events websocket and starts a reader that passes
// every used event to handle until the socket fails or is closed.
func (n *node) dialEvents(ctx context.Context, handle func(event)) (*eventConn, error) {
	ctx, cancel := context.WithTimeout(ctx, n.b.cfg.RequestTimeout)
	defer cancel()
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(n.cfg.Username+":"+n.cfg.Password)))
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(h), Timeout: n.b.cfg.RequestTimeout}
	conn, br, _, err := d.Dial(ctx, n.eventsURL())
	if err != nil {
		var se ws.StatusError
		if errors.As(err, &se) && int(se) < 500 {
			return nil, fmt.Errorf("events websocket: ARI answered %d", int(se))
		}
		return nil, fmt.Errorf("events websocket: %w: %w", pbx.ErrUnavailable, err)
	}
	c := &eventConn{conn: conn, done: make(chan struct{})}
	var r io.Reader = conn
	if br != nil {
		// Frames sent right after the handshake are already buffered.
		r = io.MultiReader(br, conn)
	}
	go c.read(struct {
		io.Reader
		io.Writer
	}{r, conn}, n, handle)
	return c, nil
}

func (c *eventConn) read(rw io.ReadWriter, n *node, handle func(event)) {
	defer close(c.done)
	defer c.once.Do(func() { _ = c.conn.Close() })
	rd := &wsutil.Reader{
		Source:         rw,
		State:          ws.StateClientSide,
		CheckUTF8:      true,
		MaxFrameSize:   maxEventSize,
		OnIntermediate: wsutil.ControlFrameHandler(rw, ws.StateClientSide),
	}
	log := n.b.logger.With("node", n.cfg.Name)
	for {
		hdr, err := rd.NextFrame()
		if err == nil && hdr.OpCode.IsControl() {
			err = wsutil.ControlFrameHandler(rw, ws.StateClientSide)(hdr, rd)
			if err == nil {
				continue
			}
		}
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		if hdr.OpCode != ws.OpText && hdr.OpCode != ws.OpBinary && hdr.OpCode != ws.OpContinuation {
			_ = rd.Discard()
			continue
		}
		msg, err := io.ReadAll(io.LimitReader(rd, maxEventSize+1))
		if err == nil && len(msg) > maxEventSize {
			err = errors.New("event larger than 1 MiB")
		}
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		ev, ok, err := decodeEvent(msg)
		if err != nil {
			log.Debug("ignoring undecodable ARI event", "err", err, "size", len(msg))
			continue
		}
		if ok {
			handle(ev)
		}
	}
}
