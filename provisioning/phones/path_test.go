package phones

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFile(t *testing.T) {
	t.Parallel()
	mac := MAC{0x00, 0x15, 0x65, 0xab, 0xcd, 0xef}
	for _, tc := range []struct {
		name string
		want File
	}{
		{"001565abcdef.cfg", File{Kind: KindMACCfg, MAC: mac}},
		{"001565ABCDEF.cfg", File{Kind: KindMACCfg, MAC: mac}},
		{"y000000000044.cfg", File{Kind: KindYealinkCommon, Model: "44"}},
		{"y000000000096.cfg", File{Kind: KindYealinkCommon, Model: "96"}},  // T54W
		{"y000000000108.cfg", File{Kind: KindYealinkCommon, Model: "108"}}, // T46U, T48U, T43U
		{"y000000000123.cfg", File{Kind: KindYealinkCommon, Model: "123"}},
		{"y000000000124.cfg", File{Kind: KindYealinkCommon, Model: "124"}}, // T31, T33G
		{"y000000000000.cfg", File{Kind: KindYealinkCommon, Model: "00"}},
		{"y000000000005.cfg", File{Kind: KindYealinkCommon, Model: "05"}},
		{"001565abcdef-phone.xml", File{Kind: KindPolycomPhone, MAC: mac}},
		{"cfg001565abcdef.xml", File{Kind: KindGrandstream, MAC: mac}},
		{"001565ABCDEF.xml", File{Kind: KindSnom, MAC: mac}},
		{"spa001565abcdef.xml", File{Kind: KindCisco, MAC: mac}},
	} {
		got, err := ParseFile(tc.name)
		if err != nil || got != tc.want {
			t.Errorf("ParseFile(%q) = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	for _, name := range []string{
		"", "000000000000.cfg", "001565abcdef", "001565abcdef.CFG", "00:15:65:ab:cd:ef.cfg",
		"001565abcdef-license.cfg", "y000000000044.cf", "y1000000000044.cfg", "y0000000000AB.cfg", "y0000000000a5.cfg", "y00000000010g.cfg",
		"cfg001565abcdef", "cfg001565abcdef.xml.bak", "SPA001565abcdef.xml", "snom370-001565ABCDEF.htm",
		"../001565abcdef.cfg", "001565abcdef.cfg/", "sip.ld", "0015.65ab.cdef.cfg",
	} {
		if f, err := ParseFile(name); !errors.Is(err, ErrUnknownFile) {
			t.Errorf("ParseFile(%q) = %+v, %v; want ErrUnknownFile", name, f, err)
		}
	}
}

func TestKindServes(t *testing.T) {
	t.Parallel()
	want := map[Kind][]Vendor{
		KindYealinkCommon: {Yealink}, KindMACCfg: {Yealink, Polycom}, KindPolycomPhone: {Polycom},
		KindGrandstream: {Grandstream}, KindSnom: {Snom}, KindCisco: {Cisco},
	}
	for k, vs := range want {
		for _, v := range append(Vendors, "other") {
			exp := false
			for _, x := range vs {
				exp = exp || x == v
			}
			if got := k.Serves(v); got != exp {
				t.Errorf("%v.Serves(%s) = %v", k, v, got)
			}
		}
	}
}

func FuzzParseFile(f *testing.F) {
	for _, s := range []string{"001565abcdef.cfg", "y000000000044.cfg", "y000000000108.cfg", "y000000000000.cfg", "001565abcdef-phone.xml",
		"cfg001565abcdef.xml", "001565ABCDEF.xml", "spa001565abcdef.xml", "000000000000.cfg", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := ParseFile(name)
		if err != nil {
			if !errors.Is(err, ErrUnknownFile) {
				t.Fatalf("ParseFile(%q): unexpected error %v", name, err)
			}
			return
		}
		if got.Kind < KindYealinkCommon || got.Kind > KindCisco {
			t.Fatalf("ParseFile(%q): kind %d", name, got.Kind)
		}
		if (got.Kind == KindYealinkCommon) != got.MAC.IsZero() {
			t.Fatalf("ParseFile(%q) = %+v: MAC presence wrong", name, got)
		}
		// Name is the inverse, up to the MAC's letter case.
		if n := got.Name(); !strings.EqualFold(n, name) {
			t.Fatalf("ParseFile(%q).Name() = %q", name, n)
		}
		if again, err := ParseFile(got.Name()); err != nil || again != got {
			t.Fatalf("ParseFile(Name()) = %+v, %v; want %+v", again, err, got)
		}
		if strings.ContainsAny(name, "/\\\x00") {
			t.Fatalf("ParseFile(%q) accepted a separator", name)
		}
	})
}
