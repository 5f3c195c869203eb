package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/pbxd/pbxd/internal/config"
	"github.com/pbxd/pbxd/pbx"
	"github.com/pbxd/pbxd/provisioning"
	"github.com/pbxd/pbxd/sip"
	"github.com/pbxd/pbxd/sip/sippg"
)

// buildBackend builds the configured PBX backend and the reconciler that
// keeps it equal to the database.
func (a *App) buildBackend(cfg *config.Config) error {
	var backend pbx.Backend
	switch cfg.Backend {
	case "builtin":
		reg, err := a.buildRegistrar(cfg)
		if err != nil {
			return err
		}
		backend = reg
		a.registrar = reg
	case "asterisk":
		b, err := a.buildAsterisk(cfg)
		if err != nil {
			return err
		}
		backend = b
	default:
		return fmt.Errorf("backend: unknown %q", cfg.Backend)
	}
	a.backend = backend
	a.readies = append(a.readies, func(context.Context) error {
		if !backend.Connected() {
			return errors.New("pbx backend " + backend.Name() + " not connected")
		}
		return nil
	})
	maxContacts := cfg.SIP.MaxContacts
	ro := provisioning.ReconcilerOptions{
		Concurrency: cfg.Reconciler.Concurrency, ResyncInterval: cfg.Reconciler.ResyncInterval.D(),
		RetryMin: cfg.Reconciler.RetryMin.D(), RetryMax: cfg.Reconciler.RetryMax.D(), MaxContacts: maxContacts,
		Local:    cfg.Backend == "builtin", // each instance's registrar needs every line
		Registry: a.reg, Logger: a.log.With("component", "reconciler"),
	}
	if split, ok := backend.(pbx.Splitter); ok {
		// Several instances share the nodes out, one owner per node.
		a.reconciler = a.prov.NewShardedReconciler(split, ro, provisioning.ShardOptions{LeaseTTL: cfg.Reconciler.LeaseTTL.D()})
	} else {
		a.reconciler = a.prov.NewReconciler(backend, ro)
	}
	a.parts = append(a.parts, part{"reconciler", a.reconciler.Run})
	return nil
}

func (a *App) buildRegistrar(cfg *config.Config) (*sip.Registrar, error) {
	sc := sip.DefaultConfig()
	sc.UDPListen, sc.TCPListen = cfg.SIP.Listen, cfg.SIP.Listen
	sc.TLSListen, sc.TLSCertFile, sc.TLSKeyFile = cfg.SIP.TLSListen, cfg.SIP.TLSCert, cfg.SIP.TLSKey
	// The nonce key derives from the secret key, so it is stable across
	// restarts without another secret to manage, and the same on every
	// instance sharing the database (they share the secret key).
	sum := sha256.Sum256(append([]byte("pbxd sip nonce\x00"), a.secretKey...))
	sc.Secret = sum[:]
	sc.NonceLifetime = cfg.SIP.NonceLifetime.D()
	sc.MinExpires, sc.MaxExpires, sc.DefaultExpires = cfg.SIP.MinExpires.D(), cfg.SIP.MaxExpires.D(), cfg.SIP.DefaultExpires.D()
	sc.MaxContacts = cfg.SIP.MaxContacts
	sc.SweepInterval, sc.ReloadInterval = cfg.SIP.SweepInterval.D(), cfg.SIP.ReloadInterval.D()
	sc.ThrottleFailures, sc.ThrottleWindow, sc.ThrottleBlock = cfg.SIP.ThrottleFailures, cfg.SIP.ThrottleWindow.D(), cfg.SIP.ThrottleBlock.D()
	sc.ThrottleSourceFailures = cfg.SIP.ThrottleSourceFailures
	sc.DigestAlgorithms, sc.DomainDigestAlgorithms = cfg.SIP.DigestAlgorithms, cfg.SIP.AccountDigestAlgorithms
	sc.ConnFirstReadTimeout, sc.ConnIdleTimeout = cfg.SIP.ConnFirstReadTimeout.D(), cfg.SIP.ConnIdleTimeout.D()
	sc.ConnsPerSource, sc.ConnsMax = cfg.SIP.ConnsPerSource, cfg.SIP.ConnsMax
	sc.ExtraListen = cfg.SIP.ExtraListen
	sc.UserAgent, sc.AllowThirdParty = cfg.SIP.ServerHeader, cfg.SIP.AllowThirdParty
	reg, err := sip.New(sc, sippg.New(a.pool), a.clock, a.log.With("component", "sip"), a.reg)
	if err != nil {
		return nil, fmt.Errorf("sip registrar: %w", err)
	}
	a.closers = append(a.closers, closer{"sip listeners", reg.Close})
	a.parts = append(a.parts, part{"sip registrar", reg.Run})
	return reg, nil
}
