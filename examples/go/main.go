// Command routing learns to route requests across replicas with libdlsched,
// from Go through cgo.
//
// A port of examples/routing.c: three replicas of a model (speeds 3, 2 and 1
// work units per tick) serve one request stream; the agent sees their queue
// lengths (3 features) and picks the replica for each request (3 actions);
// the reward is -(response time), reported through the decision's ticket
// when the request completes, late and out of order.
//
// The run is a check: it exits non-zero when a library call fails (with
// dlsched_strerror and dlsched_last_error), when the last chunk of training
// decisions earned no more than the first, or when the learned (greedy)
// policy does not beat uniform random routing on the same unseen arrivals.
//
// Build: PKG_CONFIG_PATH=<dir of dlsched.pc> go build; the binary has no run
// path: run it with LD_LIBRARY_PATH=<libdir> unless the library is installed
// where the loader looks.
package main

/*
#cgo pkg-config: dlsched
#include <stdlib.h>
#include <dlsched.h>
*/
import "C"

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"unsafe"
)

// dlsched_last_error() is thread-local, and a goroutine may move to another
// OS thread between two cgo calls: keep the main goroutine on one thread so
// the detail read after a failed call is that call's.
func init() { runtime.LockOSThread() }

// ---- a small wrapper ----------------------------------------------------------

// Error is a failed libdlsched call: which call, its status,
// dlsched_strerror() of it and dlsched_last_error() read straight after it.
type Error struct {
	Call   string
	Status int
	Text   string
	Detail string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s failed: %s (status %d): %s", e.Call, e.Text, e.Status, e.Detail)
}

func check(status C.int, call string) error {
	if status == C.DLSCHED_OK {
		return nil
	}
	return &Error{call, int(status), C.GoString(C.dlsched_strerror(status)),
		C.GoString(C.dlsched_last_error())}
}

// Agent owns a dlsched_agent and the state it is asked about. The state
// and its features live in C memory: a dlsched_state_t holds a pointer, and
// cgo forbids passing C a pointer to Go memory that holds a Go pointer.
type Agent struct {
	raw      *C.dlsched_agent
	state    *C.dlsched_state_t
	features []C.float // C memory: a view of state.features
}

// NewAgent creates an agent from a "key=value ..." spec (see dlsched(7))
// for states of nFeatures values. Close it when done.
func NewAgent(spec string, nFeatures int) (*Agent, error) {
	var cfg *C.dlsched_config
	if err := check(C.dlsched_config_new(&cfg), "dlsched_config_new"); err != nil {
		return nil, err
	}
	defer C.dlsched_config_free(cfg) // the agent keeps its own copy
	cspec := C.CString(spec)
	defer C.free(unsafe.Pointer(cspec))
	if err := check(C.dlsched_config_parse(cfg, cspec), "dlsched_config_parse"); err != nil {
		return nil, err
	}
	var raw *C.dlsched_agent
	if err := check(C.dlsched_agent_new(cfg, &raw), "dlsched_agent_new"); err != nil {
		return nil, err
	}
	st := (*C.dlsched_state_t)(C.calloc(1, C.sizeof_dlsched_state_t))
	feat := (*C.float)(C.calloc(C.size_t(nFeatures), C.sizeof_float))
	if st == nil || feat == nil {
		C.free(unsafe.Pointer(st))
		C.free(unsafe.Pointer(feat))
		C.dlsched_agent_free(raw)
		return nil, fmt.Errorf("out of memory")
	}
	st.features = feat
	st.n_features = C.uint32_t(nFeatures)
	st.n_mask = 0 // no mask
	st.mask = nil
	st.hint = -1 // no hint
	st.reserved = 0
	return &Agent{raw, st, unsafe.Slice(feat, nFeatures)}, nil
}

// Close frees the agent and the state's C memory.
func (a *Agent) Close() {
	C.dlsched_agent_free(a.raw)
	C.free(unsafe.Pointer(a.state.features))
	C.free(unsafe.Pointer(a.state))
	a.raw, a.state, a.features = nil, nil, nil
}

// Act chooses an action for features (no mask, no hint). Unless greedy, the
// decision carries a ticket to report its outcome with.
func (a *Agent) Act(features []float32, greedy bool) (C.dlsched_decision_t, error) {
	var d C.dlsched_decision_t // Go memory without pointers: fine to pass
	if len(features) != len(a.features) {
		return d, fmt.Errorf("Act: %d features, the agent takes %d", len(features), len(a.features))
	}
	for i, x := range features {
		a.features[i] = C.float(x)
	}
	var flags C.uint32_t
	if greedy {
		flags = C.DLSCHED_ACT_GREEDY
	}
	return d, check(C.dlsched_act(a.raw, a.state, flags, &d), "dlsched_act")
}

// ObserveTerminal reports the reward of a ticketed decision as a one-step
// episode.
func (a *Agent) ObserveTerminal(ticket uint64, reward float32) error {
	return check(C.dlsched_observe(a.raw, C.uint64_t(ticket), C.float(reward), nil,
		C.DLSCHED_OBS_TERMINAL), "dlsched_observe")
}

// Stats reads the agent's counters.
func (a *Agent) Stats() (C.dlsched_stats_t, error) {
	var s C.dlsched_stats_t
	return s, check(C.dlsched_stats(a.raw, &s, C.sizeof_dlsched_stats_t), "dlsched_stats")
}

// ---- the world: routing.c's queueing simulation --------------------------------

const (
	nReplicas     = 3
	arrivalRate   = 1.0 // requests per tick; capacity is 2.4
	trainRequests = 40000
	evalRequests  = 20000
	chunk         = 5000
	spec          = "algo=qtable n_features=3 n_actions=3 bins=5 feature_low=0 feature_high=5 " +
		"lr=0.05 epsilon_start=1 epsilon_end=0.02 epsilon_decay_steps=20000 seed=42"
)

var speed = [nReplicas]int{3, 2, 1} // work units per tick

// rng is splitmix64, as in routing.c: the workload and the random baseline.
type rng uint64

func (s *rng) next() uint64 {
	*s += 0x9E3779B97F4A7C15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func (s *rng) uniform() float64 { return float64(s.next()>>11) * 0x1p-53 }

func (s *rng) poisson(mean float64) int {
	k := 0
	limit := math.Exp(-mean)
	for p := s.uniform(); p > limit; p *= s.uniform() {
		k++
	}
	return k
}

type request struct {
	arrival  float64
	workLeft int
	id       int
	ticket   uint64 // 0: no outcome to report
}

type policy int

const (
	learning policy = iota // explore, keep a ticket, learn from the outcome
	learned                // greedy, no ticket
	random                 // uniform over the replicas
)

// simulate runs n requests through the replicas under pol and returns each
// request's reward (-response time) by arrival order. The arrivals depend on
// seed only, so every policy sees the same ones.
func simulate(pol policy, ag *Agent, seed uint64, n int) ([]float64, error) {
	var queues [nReplicas][]*request
	workRng, policyRng := rng(seed), rng(seed^0xABCDEF)
	reward := make([]float64, n)
	issued, done := 0, 0
	for tick := 0; done < n; tick++ {
		// 1. this tick's arrivals, routed one at a time
		for k := workRng.poisson(arrivalRate); k > 0 && issued < n; k-- {
			r := &request{arrival: float64(tick), workLeft: 1 + int(workRng.next()%4), id: issued}
			issued++
			var features [nReplicas]float32
			for i := range queues {
				features[i] = float32(len(queues[i]))
			}
			var a int
			switch pol {
			case learning:
				d, err := ag.Act(features[:], false)
				if err != nil {
					return nil, err
				}
				r.ticket, a = uint64(d.ticket), int(d.action)
			case learned:
				d, err := ag.Act(features[:], true)
				if err != nil {
					return nil, err
				}
				a = int(d.action)
			case random:
				a = int(policyRng.next() % nReplicas)
			}
			if a < 0 || a >= nReplicas {
				return nil, fmt.Errorf("action %d out of range", a)
			}
			queues[a] = append(queues[a], r)
		}
		// 2. each replica works speed units; finished requests report
		for i := range queues {
			used := 0
			for len(queues[i]) > 0 && used < speed[i] {
				r := queues[i][0]
				take := r.workLeft
				if speed[i]-used < take {
					take = speed[i] - used
				}
				r.workLeft -= take
				used += take
				if r.workLeft > 0 {
					break
				}
				latency := float64(tick) + float64(used)/float64(speed[i]) - r.arrival
				reward[r.id] = -latency
				if r.ticket != 0 { // late, out-of-order feedback through the ticket
					if err := ag.ObserveTerminal(r.ticket, float32(-latency)); err != nil {
						return nil, err
					}
				}
				queues[i][0] = nil
				queues[i] = queues[i][1:]
				done++
			}
		}
	}
	return reward, nil
}

func mean(x []float64) float64 {
	sum := 0.0
	for _, v := range x {
		sum += v
	}
	return sum / float64(len(x))
}

// run trains, evaluates and prints; false when the learning did not pay.
func run() (bool, error) {
	ag, err := NewAgent(spec, nReplicas)
	if err != nil {
		return false, err
	}
	defer ag.Close()
	fmt.Printf("dlsched-routing (Go), libdlsched %s\n", C.GoString(C.dlsched_version_string()))
	fmt.Printf("%d replicas, speeds %d/%d/%d work units per tick, %.1f requests per tick of 1..4 units\n",
		nReplicas, speed[0], speed[1], speed[2], arrivalRate)

	train, err := simulate(learning, ag, 1, trainRequests)
	if err != nil {
		return false, err
	}
	first, last := mean(train[:chunk]), mean(train[trainRequests-chunk:])
	fmt.Printf("training, %d requests; mean reward (= -latency in ticks):\n", trainRequests)
	fmt.Printf("  decisions %5d..%-5d  %8.3f\n", 1, chunk, first)
	fmt.Printf("  decisions %5d..%-5d  %8.3f\n", trainRequests-chunk+1, trainRequests, last)

	lat, err := simulate(learned, ag, 2, evalRequests)
	if err != nil {
		return false, err
	}
	learnedMean := mean(lat)
	if lat, err = simulate(random, ag, 2, evalRequests); err != nil {
		return false, err
	}
	randomMean := mean(lat)
	fmt.Printf("evaluation on unseen arrivals, %d requests; mean reward:\n", evalRequests)
	fmt.Printf("  learned (greedy)        %8.3f\n", learnedMean)
	fmt.Printf("  uniform random          %8.3f\n", randomMean)

	s, err := ag.Stats()
	if err != nil {
		return false, err
	}
	fmt.Printf("agent: decisions=%d observed=%d expired=%d train_steps=%d epsilon=%.3f\n",
		s.decisions, s.observed, s.tickets_expired, s.train_steps, s.epsilon)

	ok := true
	if last <= first {
		fmt.Printf("FAIL: the last %d training decisions earned no more than the first %d\n", chunk, chunk)
		ok = false
	}
	if learnedMean <= randomMean {
		fmt.Println("FAIL: the learned policy does not beat uniform random routing")
		ok = false
	}
	if s.observed != trainRequests || s.tickets_expired != 0 {
		fmt.Println("FAIL: every training ticket should have been observed once")
		ok = false
	}
	if ok {
		fmt.Printf("PASS: learned beats random by %.3f per request\n", learnedMean-randomMean)
	}
	return ok, nil
}

func main() {
	ok, err := run() // the agent is closed inside run (os.Exit skips defers)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dlsched-routing: %v\n", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}
