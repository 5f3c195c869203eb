package aritest

import (
	"fmt"
	"strings"
	"time"
)

// Asterisk answers an ARI write of an AOR before res_pjsip has seen it:
// sorcery queues the object's observers on the AOR type's taskprocessor
// and runs them one after the other. Only then does pjsip_options apply
// the AOR (its permanent contacts, its qualify_frequency) to the state of
// the endpoints that name it. Options.AORTaskTime models that queue; with
// it zero every write is seen at once.

// aorTask is one queued AOR write: the object as written (nil: deleted).
type aorTask struct {
	id     string
	obj    object
	doneAt time.Time
}

// queueHighWater is the taskprocessor alert level (AST_TASKPROCESSOR_HIGH_WATER_LEVEL).
const queueHighWater = 500

// queueAORLocked queues the observers of a write of AOR id (obj nil: a
// delete); s.mu held.
func (s *Server) queueAORLocked(id string, obj object) {
	if s.opts.AORTaskTime <= 0 {
		s.seenAOR[id] = obj
		return
	}
	now := time.Now()
	s.runAORTasksLocked(now)
	start := now
	if n := len(s.aorQueue); n > 0 {
		start = s.aorQueue[n-1].doneAt
	}
	s.aorQueue = append(s.aorQueue, aorTask{id: id, obj: obj, doneAt: start.Add(s.opts.AORTaskTime)})
	depth := len(s.aorQueue)
	s.aorQueueMax = max(s.aorQueueMax, depth)
	if depth >= queueHighWater && !s.aorQueueAlert {
		s.aorQueueAlert = true
		s.warnLocked(fmt.Sprintf("The 'sorcery/aor-00000005' task processor queue reached %d scheduled tasks again.", queueHighWater))
	}
}

// runAORTasksLocked applies the queued AOR writes Asterisk has run by now;
// s.mu held.
func (s *Server) runAORTasksLocked(now time.Time) {
	i := 0
	for ; i < len(s.aorQueue) && !s.aorQueue[i].doneAt.After(now); i++ {
		s.seenAOR[s.aorQueue[i].id] = s.aorQueue[i].obj
	}
	s.aorQueue = s.aorQueue[i:]
	if len(s.aorQueue) < queueHighWater*9/10 { // the taskprocessor's low water mark
		s.aorQueueAlert = false
	}
}

// AORQueueMax is the deepest the AOR queue has been since the server
// started (Options.AORTaskTime).
func (s *Server) AORQueueMax() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.aorQueueMax
}

// permanentOnlineLocked reports whether one of the endpoint's AORs, as
// res_pjsip has seen it, makes it online without any registration: an
// unqualified AOR with a permanent contact (pjsip_options counts those
// as available; a qualified one starts unknown until its OPTIONS are
// answered, and this server answers none). s.mu held.
func (s *Server) permanentOnlineLocked(endpointID string) bool {
	s.runAORTasksLocked(time.Now())
	for _, name := range strings.Split(s.objects["endpoint"][endpointID]["aors"], ",") {
		aor := s.seenAOR[strings.TrimSpace(name)]
		if aor != nil && aor["contact"] != "" && aor["qualify_frequency"] == "0" {
			return true
		}
	}
	return false
}

// AORQueueLen is how many AOR writes res_pjsip has not run yet.
func (s *Server) AORQueueLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runAORTasksLocked(time.Now())
	return len(s.aorQueue)
}

// ObjectPuts is how many PUTs of object typ/id succeeded.
func (s *Server) ObjectPuts(typ, id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.objectPuts[typ+"/"+id]
}
