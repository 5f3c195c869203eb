// Package phones serves IP phones their configuration over HTTP: the SIP
// lines bound to a device (extension, domain, password, registrar) in the
// file format and under the file name each vendor's firmware requests.
//
// Files, under GET /provision/{file}:
//
//	Yealink      {mac}.cfg, y000000000{id}.cfg (per-model common file, id padded to 12 digits)
//	Polycom      {mac}.cfg (master config) → {mac}-phone.xml
//	Grandstream  cfg{mac}.xml
//	Snom         {mac}.xml
//	Cisco        spa{mac}.xml (SPA and MPP 3PCC)
//
// Yealink and Polycom both request {mac}.cfg; the device's registered vendor
// decides which format it gets, and a file of another vendor is refused.
//
// Security: the files carry SIP passwords, so each is served only to its
// device. A phone authenticates with HTTP Basic, user name = its MAC,
// password = a per-device provisioning secret (NewSecret) of which the
// daemon stores only HashSecret. Operators put both in the provisioning URL,
// https://{mac}:{secret}@pbx.example.net/provision/. TLS is the daemon's
// listener's job. An unknown MAC is answered exactly as a wrong secret (the
// same 401 challenge and body after the same work), so probing reveals
// nothing; sources that probe unknown MACs or fail authentication are
// throttled (see Throttle). Nothing secret is logged.
//
// Freshness: the handler asks the Directory for the device on every request
// and caches nothing, so deactivating a device, moving it to another account
// or unbinding a line takes effect at the phone's next fetch; and every
// account slot the device does not use is written out disabled, so the phone
// also forgets lines it had before.
//
// Wiring, in the daemon:
//
//	r, err := phones.NewRenderer(settings)         // at start-up and on config reload: r.Update(settings)
//	h, err := phones.NewHandler(phones.Options{
//		Directory: store, Renderer: r, Registerer: reg, Logger: log.With("component", "phones"),
//	})
//	mux.Handle("/provision/", h)
//	// on SIGHUP: r.Reload() — a broken override keeps the old templates.
package phones
