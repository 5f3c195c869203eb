package portal

import (
	"github.com/pbxd/pbxd/provisioning"
)

// pending is what waits on the account: decreases scheduled for the period
// end (cancellable) and an open request to cancel everything.
type pending struct {
	Scheduled []provisioning.ScheduledChange
	Names     map[string]string
	CancelAll *provisioning.ServiceRequest
	Cancelled bool // a scheduled change was just cancelled
}

func (p *Portal) pending(q *rq) (pending, error) {
	pd := pending{Names: map[string]string{}, Cancelled: q.r.URL.Query().Get("cancelled") != ""}
	var err error
	if pd.Scheduled, err = p.o.Provisioning.PendingScheduled(q.ctx(), q.acct.ID); err != nil {
		return pd, err
	}
	cat, err := p.o.Provisioning.Packages(q.ctx(), true)
	if err != nil {
		return pd, err
	}
	for _, c := range cat {
		pd.Names[c.Code] = c.Name
	}
	open, err := p.o.Provisioning.Requests(q.ctx(), q.acct.ID, "open")
	if err != nil {
		return pd, err
	}
	for i := range open {
		if open[i].Kind == "cancel_all" {
			pd.CancelAll = &open[i]
		}
	}
	return pd, nil
}
