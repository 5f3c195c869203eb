package app

import (
	"fmt"
	"net/url"
	"time"

	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/pbx/asterisk"
	"github.com/pbxd/pbxd/provisioning"
)

// buildAsterisk builds the ARI backend over the configured nodes.
func (a *App) buildAsterisk(cfg *config.Config) (pbx.Backend, error) {
	ac := asterisk.Config{
		ObjectPrefix:     cfg.Asterisk.ObjectPrefix,
		Transport:        cfg.Asterisk.Transport,
		Codecs:           cfg.Asterisk.Codecs,
		QualifyFrequency: time.Duration(cfg.Asterisk.QualifySeconds) * time.Second,
		MaxContacts:      cfg.SIP.MaxContacts,
		RequestTimeout:   cfg.Asterisk.RequestTimeout.D(),
	}
	for _, n := range cfg.Asterisk.Nodes {
		ac.Nodes = append(ac.Nodes, asterisk.NodeConfig{Name: n.Name, URL: ariBase(n.URL), Username: n.Username, Password: n.Password, App: n.App})
	}
	if len(ac.Nodes) > 0 {
		ac.DefaultNode = ac.Nodes[0].Name
	}
	// Placement and moves choose among the same nodes; the first is the
	// default one. A reload may change capacities, weights and registrars.
	// Nodes added by a reload are not connected until a restart: only the
	// started ones are kept.
	started := placementNodes(cfg)
	a.prov.SetNodes(started)
	a.reloads = append(a.reloads, reloader{"pbx nodes", func(c *config.Config) (func(), error) {
		known := map[string]bool{}
		for _, n := range started {
			known[n.Name] = true
		}
		var nodes []provisioning.Node
		for _, n := range placementNodes(c) {
			if known[n.Name] {
				nodes = append(nodes, n)
			}
		}
		return func() { a.prov.SetNodes(nodes) }, nil
	}})
	b, err := asterisk.New(ac.WithDefaults(), a.log.With("component", "asterisk"), a.reg)
	if err != nil {
		return nil, fmt.Errorf("asterisk backend: %w", err)
	}
	a.parts = append(a.parts, part{"asterisk backend", b.Run})
	return b, nil
}

// ariBase accepts Asterisk's HTTP address as operators write it
// (PBXD_ARI_URL=http://127.0.0.1:8088, DESIGN §9) or with the /ari path.
func ariBase(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return raw
	}
	u.Path = "/ari"
	return u.String()
}

// placementNodes are the configured Asterisk nodes as placement and
// account moves see them.
func placementNodes(cfg *config.Config) []provisioning.Node {
	out := make([]provisioning.Node, 0, len(cfg.Asterisk.Nodes))
	for _, n := range cfg.Asterisk.Nodes {
		out = append(out, provisioning.Node{Name: n.Name, Capacity: n.Capacity, Weight: n.Weight, Registrar: n.Registrar})
	}
	return out
}
