package app

import (
	"fmt"
	"net/url"
	"time"

	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/pbx/asterisk"
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
