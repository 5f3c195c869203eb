package aritest

import (
	"net/http"
	"os"
	"strconv"
	"testing"
)

func TestMain(m *testing.M) {
	ServeChild("ARITEST_CHILD_TEST", Options{Username: "child", Password: "child-secret"}, func(s *Server, cmd string) string {
		if cmd == "count" {
			return strconv.Itoa(len(s.ObjectIDs("endpoint")))
		}
		return ""
	})
	os.Exit(m.Run())
}

// A child process serves ARI at the URL it reports and answers commands.
func TestChild(t *testing.T) {
	t.Parallel()
	c := StartChild(t, "ARITEST_CHILD_TEST")
	req, err := http.NewRequestWithContext(t.Context(), "GET", c.URL()+"/asterisk/info", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("child", "child-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /asterisk/info: %s", resp.Status)
	}
	if got := c.Do(t, "count"); got != "0" {
		t.Fatalf("count = %q, want 0", got)
	}
}
