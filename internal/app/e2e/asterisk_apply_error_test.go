package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/pbxd/pbxd/internal/app/apptest"
	"github.com/pbxd/pbxd/pbx/asterisk/aritest"
)

// A line the PBX refuses shows why in the API (pbxctl lines list prints
// the same field), until it is applied.
func TestAsteriskApplyErrorInAPI(t *testing.T) {
	t.Parallel()
	srv := aritest.NewTest(t, aritest.Options{Wizard: aritest.ConfigOnly}) // every PUT is refused (403)
	d := startAsterisk(t, srv)
	acct := d.CreateAccount(t, map[string]any{"sip_domain": "refused.voip.example.net"})
	d.Change(t, acct, map[string]any{"package": "world", "quantity": 1})
	var line map[string]any
	eventually(t, 20*time.Second, "apply_error in the API", func() bool {
		var out struct{ Lines []map[string]any }
		d.Call(t, apptest.OperatorToken, "GET", "/v1/accounts/"+acct+"/lines", nil).JSON(t, &out)
		line = out.Lines[0]
		return line["apply_error"] != nil
	})
	if e, _ := line["apply_error"].(string); !strings.Contains(e, "403") || line["pbx_synced"] != false {
		t.Errorf("line = %v, want pbx_synced false and the 403 in apply_error", line)
	}
}
