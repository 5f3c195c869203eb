package asterisk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/pbxd/pbxd/pbx"
)

// Inbound numbers. Each routed number is an Asterisk global variable,
// <PREFIX>DID_<digits> = <endpoint name>, set over ARI
// (POST /asterisk/variable); the dial plan's [pbxd-did] context (see
// configs/asterisk/extensions.conf) reads ${PBXD_DID_${EXTEN}} and dials
// PJSIP/<endpoint>. Asterisk keeps pbxd out of the call path: calls go on
// while pbxd is down. Globals live in memory only, so an Asterisk restart
// forgets them; the node signals a resync on every (re)connection and the
// reconciler pushes them again (and repairs them on its periodic resync).
// ARI cannot list globals: pbxd reads back the numbers it knows (its
// inventory), which is how it finds and clears a stale route.

var _ pbx.NumberRouter = (*Backend)(nil)

// DIDVariable is the global variable routing number (E.164) for an object
// prefix: the prefix in capitals with other characters as "_", then
// "DID_" and the number's digits ("pbxd-", +33142000001 →
// PBXD_DID_33142000001).
func DIDVariable(prefix, number string) (string, error) {
	digits := strings.TrimPrefix(number, "+")
	if len(digits) < 1 || len(digits) > 15 || strings.Trim(digits, "0123456789") != "" || !strings.HasPrefix(number, "+") {
		return "", fmt.Errorf("asterisk: %q is not an E.164 number", number)
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(prefix) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String() + "DID_" + digits, nil
}

// RouteTarget implements pbx.NumberRouter: the line's endpoint name.
func (b *Backend) RouteTarget(line pbx.LineConfig) string { return endpointName(line) }

func (b *Backend) routeNode(name, number string) (*node, string, error) {
	n, err := b.nodeFor(pbx.LineConfig{ID: number, Node: name})
	if err != nil {
		return nil, "", err
	}
	v, err := DIDVariable(b.cfg.ObjectPrefix, number)
	return n, v, err
}

// SetRoute implements pbx.NumberRouter. An empty target removes the
// variable: ARI's POST without a value deletes a global (Asterisk's
// pbx_builtin_setvar_helper with no value), where an empty value would
// leave it set to "".
func (b *Backend) SetRoute(ctx context.Context, node, number, target string) error {
	n, v, err := b.routeNode(node, number)
	if err != nil {
		return err
	}
	if strings.ContainsAny(target, " \t\r\n,()$") {
		return fmt.Errorf("asterisk: route target %q cannot be dialled", target)
	}
	q := url.Values{"variable": {v}}
	op := "unset_var"
	if target != "" {
		q.Set("value", target)
		op = "set_var"
	}
	if err := n.send(ctx, http.MethodPost, op, "/asterisk/variable?"+q.Encode(), nil, nil); err != nil {
		return fmt.Errorf("asterisk: route %s on %s: %w", number, n.cfg.Name, err)
	}
	return nil
}

// HeldRoute implements pbx.NumberRouter. ARI answers 200 with an empty
// value for a variable that does not exist.
func (b *Backend) HeldRoute(ctx context.Context, node, number string) (string, error) {
	n, v, err := b.routeNode(node, number)
	if err != nil {
		return "", err
	}
	var out struct {
		Value string `json:"value"`
	}
	err = n.send(ctx, http.MethodGet, "get_var", "/asterisk/variable?"+url.Values{"variable": {v}}.Encode(), nil, &out)
	if errors.Is(err, errAbsent) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("asterisk: read route of %s on %s: %w", number, n.cfg.Name, err)
	}
	return out.Value, nil
}
