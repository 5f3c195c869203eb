package app

import (
	"context"
	"errors"
	"time"

	"github.com/pbxd/pbxd/billing"
	"github.com/pbxd/pbxd/internal/scheduler"
	"github.com/pbxd/pbxd/provisioning"
)

// withScheduledChanges makes the renewal job apply the period-end changes
// that fell due first, so each renewal bills the quantity in force for the
// new period (a cancelled package renews at zero). One job, not two, so no
// schedule or catch-up order can renew before the decrease.
func withScheduledChanges(jobs []scheduler.Job, prov *provisioning.Service) []scheduler.Job {
	for i, j := range jobs {
		if j.Name != billing.RenewalJob {
			continue
		}
		renew := j.Run
		jobs[i].Run = func(ctx context.Context, now time.Time) error {
			_, serr := prov.ApplyScheduledChanges(ctx, now)
			// Hardware orders left pending by a gateway timeout or a crash.
			herr := prov.SettleHardwareOrders(ctx, now)
			return errors.Join(serr, renew(ctx, now), herr)
		}
	}
	return jobs
}
