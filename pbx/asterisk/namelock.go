package asterisk

import "sync"

// nameLocks serialises, per endpoint name, the writes and deletes of one
// node that read an endpoint and then act on what they read. A line's
// removal reads the endpoint to check it still owns it before deleting it
// and its aor; without the lock, a new line taking the same name (a
// deleted line's SIP username reused, in the same batch) could write its
// endpoint between that check and the delete, and lose it until the next
// full resync.
type nameLocks struct {
	mu    sync.Mutex
	locks map[string]*nameLock
}

type nameLock struct {
	sync.Mutex
	users int // holders and waiters; the entry goes when it drops to 0
}

// lock takes name's lock and returns its release. A caller holds at most
// one name at a time, so two callers never wait for each other's names.
func (l *nameLocks) lock(name string) (unlock func()) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*nameLock{}
	}
	nl := l.locks[name]
	if nl == nil {
		nl = &nameLock{}
		l.locks[name] = nl
	}
	nl.users++
	l.mu.Unlock()
	nl.Lock()
	return func() {
		nl.Unlock()
		l.mu.Lock()
		if nl.users--; nl.users == 0 {
			delete(l.locks, name)
		}
		l.mu.Unlock()
	}
}
