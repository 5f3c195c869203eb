package provisioning

import (
	"context"
	"fmt"
	"sync"

	"github.com/pbxd/pbxd/internal/fault"
)

// Node is one PBX node accounts can be placed on (an Asterisk server), as
// the daemon's config describes it. With no nodes (the built-in registrar)
// accounts carry no node and cannot move.
type Node struct {
	Name string
	// Capacity is the most live lines placement puts on the node; 0 is
	// unlimited. A node at or over it gets no new account unless one
	// names it explicitly (creation or move).
	Capacity int
	// Weight is the node's share of the lines; 0 means 1. A node of
	// weight 2 is filled to twice the lines of a node of weight 1.
	Weight int
	// Registrar is the host phones of accounts on this node register to
	// (written into their provisioning files); "" keeps phones.registrar.
	Registrar string
}

// nodeSet is the configured nodes, swapped whole on reload.
type nodeSet struct {
	mu    sync.RWMutex
	nodes []Node
}

// SetNodes sets the PBX nodes placement and moves choose from; the first
// is the default node (the one an account without a node lives on).
func (s *Service) SetNodes(nodes []Node) {
	s.nodes.mu.Lock()
	defer s.nodes.mu.Unlock()
	s.nodes.nodes = append([]Node(nil), nodes...)
}

func (s *Service) nodeList() []Node {
	s.nodes.mu.RLock()
	defer s.nodes.mu.RUnlock()
	return s.nodes.nodes
}

// nodeName is the name of the node an account with pbx_node name lives
// on: "" is the default (first) node.
func (s *Service) nodeName(name string) string {
	if name != "" {
		return name
	}
	if ns := s.nodeList(); len(ns) > 0 {
		return ns[0].Name
	}
	return ""
}

// node returns the configured node called name.
func (s *Service) node(name string) (Node, bool) {
	for _, n := range s.nodeList() {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// NodeLoad is one node's share of the lines, as placement sees it.
type NodeLoad struct {
	Node     string `json:"node"`
	Lines    int    `json:"lines"`
	Accounts int    `json:"accounts"`
	Capacity int    `json:"capacity"` // 0: unlimited
	Weight   int    `json:"weight"`
}

// NodeLoads counts the live lines and accounts on every configured node
// (an account without a node counts on the default node; a moving account
// on the node it moves to).
func (s *Service) NodeLoads(ctx context.Context) ([]NodeLoad, error) {
	nodes := s.nodeList()
	out := make([]NodeLoad, len(nodes))
	idx := map[string]int{}
	for i, n := range nodes {
		out[i] = NodeLoad{Node: n.Name, Capacity: n.Capacity, Weight: max(1, n.Weight)}
		idx[n.Name] = i
	}
	if len(nodes) == 0 {
		return out, nil
	}
	rows, err := s.q.NodeLoads(ctx)
	if err != nil {
		return nil, fmt.Errorf("count lines per node: %w", err)
	}
	for _, row := range rows {
		if i, ok := idx[s.nodeName(row.PbxNode)]; ok {
			out[i].Lines += int(row.Lines)
			out[i].Accounts += int(row.Accounts)
		}
	}
	return out, nil
}

// place picks the node for a new account that names none. The rule: of
// the nodes below their capacity, the one with the fewest live lines per
// unit of weight; on a tie, the fewest accounts per unit of weight (a
// burst of new, empty accounts spreads out); then the first in the
// config. Ratios are compared by cross-multiplication, so no float
// rounding decides. Every node full is a conflict on pbx_node.
func place(loads []NodeLoad) (string, error) {
	best := -1
	for i, l := range loads {
		if l.Capacity > 0 && l.Lines >= l.Capacity {
			continue
		}
		if best < 0 || lessLoaded(l, loads[best]) {
			best = i
		}
	}
	if best < 0 {
		return "", fault.New(fault.Conflict, "pbx_node", "every PBX node is at its configured capacity; raise a node's capacity or add a node")
	}
	return loads[best].Node, nil
}

// lessLoaded reports whether a carries strictly less than b per unit of
// weight (lines, then accounts).
func lessLoaded(a, b NodeLoad) bool {
	wa, wb := int64(max(1, a.Weight)), int64(max(1, b.Weight))
	if x, y := int64(a.Lines)*wb, int64(b.Lines)*wa; x != y {
		return x < y
	}
	return int64(a.Accounts)*wb < int64(b.Accounts)*wa
}

// placeAccount validates a node named at creation, or picks one.
func (s *Service) placeAccount(ctx context.Context, named string) (string, error) {
	if len(s.nodeList()) == 0 {
		if named != "" {
			return "", fault.New(fault.Invalid, "pbx_node", "no PBX nodes are configured (the built-in registrar has none)")
		}
		return "", nil
	}
	if named != "" {
		if _, ok := s.node(named); !ok {
			return "", fault.New(fault.Invalid, "pbx_node", "%q is not a configured PBX node (%s)", named, s.nodeNames())
		}
		return named, nil
	}
	loads, err := s.NodeLoads(ctx)
	if err != nil {
		return "", err
	}
	return place(loads)
}

// nodeNames lists the configured node names for error messages.
func (s *Service) nodeNames() string {
	out := ""
	for i, n := range s.nodeList() {
		if i > 0 {
			out += ", "
		}
		out += n.Name
	}
	return out
}
