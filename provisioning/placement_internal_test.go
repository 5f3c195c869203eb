package provisioning

import (
	"testing"

	"github.com/pbxd/pbxd/internal/fault"
)

// The placement rule: below capacity, fewest lines per unit of weight,
// then fewest accounts per unit of weight, then config order.
func TestPlace(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		loads []NodeLoad
		want  string
	}{
		{"all empty: the first", []NodeLoad{{Node: "a"}, {Node: "b"}}, "a"},
		{"fewest lines", []NodeLoad{{Node: "a", Lines: 10}, {Node: "b", Lines: 9}}, "b"},
		{"weight doubles the share", []NodeLoad{{Node: "a", Lines: 10, Weight: 1}, {Node: "b", Lines: 19, Weight: 2}}, "b"},
		{"weight, equal share: accounts decide", []NodeLoad{{Node: "a", Lines: 10, Accounts: 2}, {Node: "b", Lines: 20, Weight: 2, Accounts: 3}}, "b"},
		{"equal: config order", []NodeLoad{{Node: "a", Lines: 5, Accounts: 1}, {Node: "b", Lines: 5, Accounts: 1}}, "a"},
		{"a full node is skipped", []NodeLoad{{Node: "a", Lines: 100, Capacity: 100}, {Node: "b", Lines: 5000}}, "b"},
		{"new empty accounts spread out", []NodeLoad{{Node: "a", Accounts: 3}, {Node: "b", Accounts: 2}}, "b"},
		{"no float rounding", []NodeLoad{{Node: "a", Lines: 1, Weight: 3}, {Node: "b", Lines: 0, Weight: 0, Accounts: 1}, {Node: "c", Lines: 1, Weight: 3}}, "b"},
	} {
		got, err := place(tc.loads)
		if err != nil || got != tc.want {
			t.Errorf("%s: place = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	_, err := place([]NodeLoad{{Node: "a", Lines: 3, Capacity: 3}, {Node: "b", Lines: 9, Capacity: 2}})
	if f, ok := fault.As(err); !ok || f.Kind != fault.Conflict || f.Field != "pbx_node" {
		t.Errorf("every node full: %v, want a conflict on pbx_node", err)
	}
}
