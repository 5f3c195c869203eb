package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// idempotent makes a mutating handler safe to retry: with an
// Idempotency-Key header, the first answer is stored and replayed to every
// retry of the same request; the same key with another request is refused.
// A key is scoped to the caller, so two accounts cannot collide.
func (a *API) idempotent(pool *pgxpool.Pool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if key == "" || pool == nil {
			next.ServeHTTP(w, r)
			return
		}
		if len(key) > 200 {
			writeProblem(w, Invalid("Idempotency-Key", "Idempotency-Key is at most 200 characters"))
			return
		}
		body, err := io.ReadAll(r.Body)
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeProblem(w, TooLarge())
			return
		}
		if err != nil {
			writeProblem(w, Invalid("", "unreadable body"))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h := sha256.New()
		h.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
		h.Write(body)
		hash := hex.EncodeToString(h.Sum(nil))
		scope := PrincipalFrom(r.Context()).Actor()
		ctx := r.Context()

		// Claim the key; a concurrent duplicate sees the claim and waits.
		tag, err := pool.Exec(ctx, `INSERT INTO idempotency_keys (scope, key, request_hash, status, body, created_at)
			VALUES ($1, $2, $3, 0, '', $4) ON CONFLICT DO NOTHING`, scope, key, hash, time.Now())
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if tag.RowsAffected() == 0 {
			for i := 0; i < 100; i++ {
				var storedHash string
				var status int
				var stored []byte
				err := pool.QueryRow(ctx, `SELECT request_hash, status, body FROM idempotency_keys WHERE scope = $1 AND key = $2`, scope, key).Scan(&storedHash, &status, &stored)
				if errors.Is(err, pgx.ErrNoRows) {
					break // the first attempt failed and released the key: run again
				}
				if err != nil {
					a.writeError(w, r, err)
					return
				}
				if storedHash != hash {
					writeProblem(w, Invalid("Idempotency-Key", "this Idempotency-Key was used for a different request"))
					return
				}
				if status != 0 {
					w.Header().Set("Content-Type", contentTypeFor(status))
					w.Header().Set("Idempotent-Replayed", "true")
					w.WriteHeader(status)
					_, _ = w.Write(stored)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			if _, err := pool.Exec(ctx, `INSERT INTO idempotency_keys (scope, key, request_hash, status, body, created_at)
				VALUES ($1, $2, $3, 0, '', $4) ON CONFLICT DO NOTHING`, scope, key, hash, time.Now()); err != nil {
				a.writeError(w, r, err)
				return
			}
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		bg := r.Context()
		if rec.status >= 500 {
			// A server error is not an answer: let the client retry for real.
			_, _ = pool.Exec(bg, `DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status = 0`, scope, key)
			return
		}
		_, err = pool.Exec(bg, `UPDATE idempotency_keys SET status = $3, body = $4 WHERE scope = $1 AND key = $2`, scope, key, rec.status, rec.buf.Bytes())
		if err != nil {
			a.log.Error("store idempotent answer", "err", err)
		}
	})
}

func contentTypeFor(status int) string {
	if status >= 400 {
		return "application/problem+json"
	}
	return "application/json"
}

type recorder struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.buf.Write(b)
	return r.ResponseWriter.Write(b)
}
