package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// Fence names the leadership a scheduled job runs under: the job and the
// epoch its leader took (table leader_fences, migration 00031).
type Fence struct {
	Job   string
	Epoch int64
}

type fenceKey struct{}

// WithFence returns ctx carrying f: the job's transactions check it.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence ctx carries, if any.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

// FenceSQL is the statement that fails its transaction once the leader
// of the fence's job has changed; queue it first with the fence's Job and
// Epoch (a pipelined transaction pays no extra round trip).
const FenceSQL = `SELECT pbxd_fence($1, $2)`

// ErrFenced is wrapped by CheckFence when the leadership is over.
var ErrFenced = errors.New("leadership lost to another instance")

// CheckFence runs the fence of ctx, if any, in tx: call it first in every
// transaction of a leader-only job.
func CheckFence(ctx context.Context, tx DBTX) error {
	f, ok := FenceFrom(ctx)
	if !ok {
		return nil
	}
	if _, err := tx.Exec(ctx, FenceSQL, f.Job, f.Epoch); err != nil {
		return FenceError(err)
	}
	return nil
}

// FenceError marks err as ErrFenced when it is the fence's.
func FenceError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "PX001" {
		return fmt.Errorf("%w: %s", ErrFenced, pe.Message)
	}
	return err
}
