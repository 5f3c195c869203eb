package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/pbxd/pbxd/internal/store"
	"github.com/pbxd/pbxd/internal/store/apidb"
)

// idempotent makes a mutating handler safe to retry: with an
// Idempotency-Key header, the first answer is stored and replayed to every
// retry of the same request; the same key with another request is refused.
// A key is scoped to the caller, so two accounts cannot collide.
func (a *API) idempotent(db *store.DB, next http.Handler) http.Handler {
	var keys *apidb.Queries
	if db != nil {
		keys = apidb.New(db)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if key == "" || keys == nil {
			next.ServeHTTP(w, r)
			return
		}
		if len(key) > 200 {
			writeProblem(w, Invalid("Idempotency-Key", "Idempotency-Key is at most 200 characters"))
			return
		}
		hash, ok := requestHash(w, r)
		if !ok {
			return
		}
		scope := PrincipalFrom(r.Context()).Actor()
		ctx := r.Context()

		// Claim the key; a concurrent duplicate sees the claim and waits.
		claim := apidb.ClaimKeyParams{Scope: scope, Key: key, RequestHash: hash, CreatedAt: time.Now()}
		claimed, err := keys.ClaimKey(ctx, claim)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if claimed == 0 {
			if a.answerFromClaim(w, r, keys, scope, key, hash) {
				return
			}
			claim.CreatedAt = time.Now()
			if _, err := keys.ClaimKey(ctx, claim); err != nil {
				a.writeError(w, r, err)
				return
			}
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		bg := r.Context()
		if rec.status >= 500 {
			// A server error is not an answer: let the client retry for real.
			_ = keys.ReleaseKey(bg, apidb.ReleaseKeyParams{Scope: scope, Key: key})
			return
		}
		err = keys.StoreAnswer(bg, apidb.StoreAnswerParams{Scope: scope, Key: key, Status: int32(rec.status), Body: rec.buf.Bytes()})
		if err != nil {
			a.log.Error("store idempotent answer", "err", err)
		}
	})
}

// requestHash reads r's body (putting it back for the handler) and returns
// the hash of the request that an Idempotency-Key stands for: method, path
// and body. A body too large or unreadable is answered here (ok false).
func requestHash(w http.ResponseWriter, r *http.Request) (hash string, ok bool) {
	body, err := io.ReadAll(r.Body)
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		writeProblem(w, TooLarge())
		return "", false
	}
	if err != nil {
		writeProblem(w, Invalid("", "unreadable body"))
		return "", false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil)), true
}

// answerFromClaim waits for the request that claimed key first and replays
// its answer, or refuses a different request under the same key; either
// way it answered (true). false: the first attempt released the key, or
// did not answer in 5 s, and this request is to run.
func (a *API) answerFromClaim(w http.ResponseWriter, r *http.Request, keys *apidb.Queries, scope, key, hash string) bool {
	for i := 0; i < 100; i++ {
		stored, err := keys.GetKey(r.Context(), apidb.GetKeyParams{Scope: scope, Key: key})
		if errors.Is(err, store.ErrNotFound) {
			return false // the first attempt failed and released the key: run again
		}
		if err != nil {
			a.writeError(w, r, err)
			return true
		}
		if stored.RequestHash != hash {
			writeProblem(w, Invalid("Idempotency-Key", "this Idempotency-Key was used for a different request"))
			return true
		}
		if status := int(stored.Status); status != 0 {
			w.Header().Set("Content-Type", contentTypeFor(status))
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(status)
			_, _ = w.Write(stored.Body)
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
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
