package percent

import "testing"

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		bp   int64
		fmt  string
		fail bool
	}{
		{in: "20", bp: 2000, fmt: "20"},
		{in: "5.5", bp: 550, fmt: "5.5"},
		{in: "12.25", bp: 1225, fmt: "12.25"},
		{in: "0", bp: 0, fmt: "0"},
		{in: "100", bp: 10000, fmt: "100"},
		{in: "100.01", fail: true},
		{in: "-1", fail: true},
		{in: "1.234", fail: true},
		{in: "1.", fail: true},
		{in: ".5", fail: true},
		{in: "abc", fail: true},
		{in: "", fail: true},
	} {
		bp, err := Parse(tc.in)
		if tc.fail {
			if err == nil {
				t.Errorf("Parse(%q) = %d, want an error", tc.in, bp)
			}
			continue
		}
		if err != nil || bp != tc.bp {
			t.Errorf("Parse(%q) = %d, %v; want %d", tc.in, bp, err, tc.bp)
		}
		if got := Format(bp); got != tc.fmt {
			t.Errorf("Format(%d) = %q, want %q", bp, got, tc.fmt)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"20", "5.5", "100", "0.01", "1e3", " 7 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		bp, err := Parse(s)
		if err != nil {
			return
		}
		if bp < 0 || bp > 10000 {
			t.Fatalf("Parse(%q) = %d out of range", s, bp)
		}
		if back, err := Parse(Format(bp)); err != nil || back != bp {
			t.Fatalf("round trip of %d: %d, %v", bp, back, err)
		}
	})
}
