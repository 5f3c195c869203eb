package app

import "testing"

func TestARIBase(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://127.0.0.1:8088":       "http://127.0.0.1:8088/ari",
		"http://127.0.0.1:8088/":      "http://127.0.0.1:8088/ari",
		"https://pbx1:8089/ari":       "https://pbx1:8089/ari",
		"http://10.0.0.5:8088/custom": "http://10.0.0.5:8088/custom",
	} {
		if got := ariBase(in); got != want {
			t.Errorf("ariBase(%q) = %q, want %q", in, got, want)
		}
	}
}
