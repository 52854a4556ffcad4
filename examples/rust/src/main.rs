//! Learn to route requests across replicas with libdlsched, from Rust.
//!
//! A port of examples/routing.c through the C ABI: three replicas of a model
//! (speeds 3, 2 and 1 work units per tick) serve one request stream; the
//! agent sees their queue lengths (3 features) and picks the replica for each
//! request (3 actions); the reward is -(response time), reported through the
//! decision's ticket when the request completes, late and out of order.
//!
//! The run is a check: it exits non-zero when a library call fails (with
//! dlsched_strerror and dlsched_last_error), when the last chunk of training
//! decisions earned no more than the first, or when the learned (greedy)
//! policy does not beat uniform random routing on the same unseen arrivals.
//!
//! Build: PKG_CONFIG_PATH=<dir of dlsched.pc> cargo build --offline --release
//! (build.rs links what pkg-config names and sets the run path to its libdir).

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::{c_char, c_int};
use std::ptr;

/// The part of include/dlsched.h this program uses.
#[allow(non_camel_case_types)]
mod ffi {
    use std::os::raw::{c_char, c_int};

    pub const DLSCHED_OK: c_int = 0;
    pub const DLSCHED_ACT_GREEDY: u32 = 1;
    pub const DLSCHED_OBS_TERMINAL: u32 = 1;

    /// Opaque handles: only ever used behind pointers.
    #[repr(C)]
    pub struct dlsched_config {
        _opaque: [u8; 0],
    }
    #[repr(C)]
    pub struct dlsched_agent {
        _opaque: [u8; 0],
    }

    /// dlsched_state_t (frozen for major version 1): pointer (8) + 2 x
    /// uint32_t (8) + pointer (8) + int32_t (4) + uint32_t (4) = 32 bytes,
    /// 8-aligned, no padding (offsets 0, 8, 12, 16, 24, 28) on LP64.
    #[repr(C)]
    pub struct dlsched_state_t {
        pub features: *const f32,
        pub n_features: u32,
        pub n_mask: u32,
        pub mask: *const u8,
        pub hint: i32,
        pub reserved: u32,
    }

    /// dlsched_decision_t (frozen for major version 1): 2 x uint64_t (16) +
    /// int32_t + uint32_t (8) + 2 x float (8) = 32 bytes, 8-aligned, no
    /// padding (offsets 0, 8, 16, 20, 24, 28).
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct dlsched_decision_t {
        pub ticket: u64,
        pub model_version: u64,
        pub action: i32,
        pub flags: u32,
        pub value: f32,
        pub probability: f32,
    }

    /// The first members of dlsched_stats_t, through mean_reward (the 1.0
    /// layout's first 128 bytes: 2 x uint32_t, 12 x uint64_t, 3 x double).
    /// dlsched_stats() is size-prefixed: it writes at most the size passed
    /// and reports in `size` how much it filled, so a caller may declare a
    /// prefix of the struct.
    #[repr(C)]
    #[derive(Default)]
    pub struct dlsched_stats_head_t {
        pub size: u32,
        pub backend: u32,
        pub decisions: u64,
        pub explored: u64,
        pub hinted: u64,
        pub tickets_issued: u64,
        pub observed: u64,
        pub tickets_pending: u64,
        pub tickets_expired: u64,
        pub transitions: u64,
        pub transitions_stored: u64,
        pub train_steps: u64,
        pub model_version: u64,
        pub memory_bytes: u64,
        pub epsilon: f64,
        pub last_loss: f64,
        pub mean_reward: f64,
    }

    // The layouts above, checked at compile time against the header's.
    const _: () = assert!(std::mem::size_of::<dlsched_state_t>() == 32);
    const _: () = assert!(std::mem::align_of::<dlsched_state_t>() == 8);
    const _: () = assert!(std::mem::size_of::<dlsched_decision_t>() == 32);
    const _: () = assert!(std::mem::align_of::<dlsched_decision_t>() == 8);
    const _: () = assert!(std::mem::size_of::<dlsched_stats_head_t>() == 128);

    extern "C" {
        pub fn dlsched_version_string() -> *const c_char;
        pub fn dlsched_strerror(status: c_int) -> *const c_char;
        pub fn dlsched_last_error() -> *const c_char;
        pub fn dlsched_config_new(out: *mut *mut dlsched_config) -> c_int;
        pub fn dlsched_config_free(cfg: *mut dlsched_config);
        pub fn dlsched_config_parse(cfg: *mut dlsched_config, spec: *const c_char) -> c_int;
        pub fn dlsched_agent_new(cfg: *const dlsched_config, out: *mut *mut dlsched_agent)
            -> c_int;
        pub fn dlsched_agent_free(agent: *mut dlsched_agent);
        pub fn dlsched_act(
            agent: *mut dlsched_agent,
            state: *const dlsched_state_t,
            flags: u32,
            out: *mut dlsched_decision_t,
        ) -> c_int;
        pub fn dlsched_observe(
            agent: *mut dlsched_agent,
            ticket: u64,
            reward: f32,
            next: *const dlsched_state_t,
            flags: u32,
        ) -> c_int;
        pub fn dlsched_stats(
            agent: *mut dlsched_agent,
            out: *mut dlsched_stats_head_t,
            size: usize,
        ) -> c_int;
    }
}

// ---- a small safe wrapper -----------------------------------------------------

/// A failed libdlsched call: which call, its status, dlsched_strerror() of
/// it and dlsched_last_error() read straight after it on the same thread.
#[derive(Debug)]
struct Error {
    call: &'static str,
    status: c_int,
    text: String,
    detail: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed: {} (status {}): {}",
            self.call, self.text, self.status, self.detail
        )
    }
}

fn c_text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the library returns NUL-terminated strings it owns (static, or
    // thread-local until this thread's next failing call); copied at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn check(status: c_int, call: &'static str) -> Result<(), Error> {
    if status == ffi::DLSCHED_OK {
        return Ok(());
    }
    // SAFETY: both never fail and never return NULL.
    let (text, detail) = unsafe {
        (
            c_text(ffi::dlsched_strerror(status)),
            c_text(ffi::dlsched_last_error()),
        )
    };
    Err(Error {
        call,
        status,
        text,
        detail,
    })
}

fn version_string() -> String {
    // SAFETY: a static string, never NULL.
    c_text(unsafe { ffi::dlsched_version_string() })
}

/// An owned dlsched_agent; freed on drop.
struct Agent {
    raw: *mut ffi::dlsched_agent,
}

impl Agent {
    /// Creates an agent from a "key=value ..." spec (see dlsched(7)).
    fn new(spec: &str) -> Result<Agent, Error> {
        let spec = CString::new(spec).expect("the spec has no NUL byte");
        let mut cfg: *mut ffi::dlsched_config = ptr::null_mut();
        // SAFETY: out-pointer to a local; the config is freed on every path.
        unsafe {
            check(ffi::dlsched_config_new(&mut cfg), "dlsched_config_new")?;
            let mut raw: *mut ffi::dlsched_agent = ptr::null_mut();
            let made = check(
                ffi::dlsched_config_parse(cfg, spec.as_ptr()),
                "dlsched_config_parse",
            )
            .and_then(|()| check(ffi::dlsched_agent_new(cfg, &mut raw), "dlsched_agent_new"));
            ffi::dlsched_config_free(cfg); // the agent keeps its own copy
            made.map(|()| Agent { raw })
        }
    }

    /// Chooses an action for `features` (no mask, no hint). Unless greedy,
    /// the decision carries a ticket to report its outcome with.
    fn act(&mut self, features: &[f32], greedy: bool) -> Result<ffi::dlsched_decision_t, Error> {
        let state = ffi::dlsched_state_t {
            features: features.as_ptr(),
            n_features: u32::try_from(features.len()).expect("fewer than 2^32 features"),
            n_mask: 0,
            mask: ptr::null(),
            hint: -1,
            reserved: 0,
        };
        let flags = if greedy { ffi::DLSCHED_ACT_GREEDY } else { 0 };
        let mut d = ffi::dlsched_decision_t {
            ticket: 0,
            model_version: 0,
            action: -1,
            flags: 0,
            value: 0.0,
            probability: 0.0,
        };
        // SAFETY: state and the features it points to outlive the call, which
        // only reads them; d is written only.
        check(
            unsafe { ffi::dlsched_act(self.raw, &state, flags, &mut d) },
            "dlsched_act",
        )?;
        Ok(d)
    }

    /// Reports the reward of a ticketed decision as a one-step episode.
    fn observe_terminal(&mut self, ticket: u64, reward: f32) -> Result<(), Error> {
        // SAFETY: next may be NULL with DLSCHED_OBS_TERMINAL.
        let status = unsafe {
            ffi::dlsched_observe(
                self.raw,
                ticket,
                reward,
                ptr::null(),
                ffi::DLSCHED_OBS_TERMINAL,
            )
        };
        check(status, "dlsched_observe")
    }

    fn stats(&mut self) -> Result<ffi::dlsched_stats_head_t, Error> {
        let mut s = ffi::dlsched_stats_head_t::default();
        let size = std::mem::size_of::<ffi::dlsched_stats_head_t>();
        // SAFETY: the library writes at most `size` bytes into s.
        check(
            unsafe { ffi::dlsched_stats(self.raw, &mut s, size) },
            "dlsched_stats",
        )?;
        assert_eq!(
            s.size as usize, size,
            "dlsched_stats filled {} bytes",
            s.size
        );
        Ok(s)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: raw came from dlsched_agent_new and is freed once, here.
        unsafe { ffi::dlsched_agent_free(self.raw) }
    }
}

// ---- the world: routing.c's queueing simulation --------------------------------

const N_REPLICAS: usize = 3;
const SPEED: [i32; N_REPLICAS] = [3, 2, 1]; // work units per tick
const ARRIVAL_RATE: f64 = 1.0; // requests per tick; capacity is 2.4
const TRAIN_REQUESTS: usize = 40000;
const EVAL_REQUESTS: usize = 20000;
const CHUNK: usize = 5000;
const SPEC: &str = "algo=qtable n_features=3 n_actions=3 bins=5 feature_low=0 feature_high=5 \
                    lr=0.05 epsilon_start=1 epsilon_end=0.02 epsilon_decay_steps=20000 seed=42";

/// splitmix64, as in routing.c: the workload and the random baseline.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    fn poisson(&mut self, mean: f64) -> u32 {
        let limit = (-mean).exp();
        let mut k = 0;
        let mut p = self.uniform();
        while p > limit {
            k += 1;
            p *= self.uniform();
        }
        k
    }
}

struct Request {
    arrival: f64,
    work_left: i32,
    id: usize,
    ticket: u64, // 0: no outcome to report
}

#[derive(Clone, Copy, PartialEq)]
enum Policy {
    Learning, // explore, keep a ticket, learn from the outcome
    Learned,  // greedy, no ticket
    Random,   // uniform over the replicas
}

/// Runs n requests through the replicas under `policy`; returns each
/// request's reward (-response time) by arrival order. The arrivals depend
/// on `seed` only, so every policy sees the same ones.
fn simulate(policy: Policy, agent: &mut Agent, seed: u64, n: usize) -> Result<Vec<f64>, Error> {
    let mut queues: Vec<VecDeque<Request>> = (0..N_REPLICAS).map(|_| VecDeque::new()).collect();
    let mut work_rng = Rng(seed);
    let mut policy_rng = Rng(seed ^ 0xAB_CDEF);
    let mut reward = vec![0.0f64; n];
    let (mut issued, mut done) = (0usize, 0usize);
    let mut tick: u64 = 0;
    while done < n {
        // 1. this tick's arrivals, routed one at a time
        let mut k = work_rng.poisson(ARRIVAL_RATE);
        while k > 0 && issued < n {
            k -= 1;
            let work = 1 + (work_rng.next_u64() % 4) as i32;
            let mut r = Request {
                arrival: tick as f64,
                work_left: work,
                id: issued,
                ticket: 0,
            };
            issued += 1;
            let mut features = [0.0f32; N_REPLICAS];
            for (f, q) in features.iter_mut().zip(&queues) {
                *f = q.len() as f32;
            }
            let a = match policy {
                Policy::Learning => {
                    let d = agent.act(&features, false)?;
                    r.ticket = d.ticket;
                    d.action
                }
                Policy::Learned => agent.act(&features, true)?.action,
                Policy::Random => (policy_rng.next_u64() % N_REPLICAS as u64) as i32,
            };
            let a = usize::try_from(a)
                .ok()
                .filter(|&a| a < N_REPLICAS)
                .expect("action in range");
            queues[a].push_back(r);
        }
        // 2. each replica works SPEED units; finished requests report
        for (i, q) in queues.iter_mut().enumerate() {
            let speed = SPEED[i];
            let mut used = 0;
            while used < speed {
                let r = match q.front_mut() {
                    Some(r) => r,
                    None => break,
                };
                let take = r.work_left.min(speed - used);
                r.work_left -= take;
                used += take;
                if r.work_left > 0 {
                    break;
                }
                let latency = tick as f64 + used as f64 / speed as f64 - r.arrival;
                reward[r.id] = -latency;
                if r.ticket != 0 {
                    // late, out-of-order feedback through the ticket
                    agent.observe_terminal(r.ticket, -latency as f32)?;
                }
                q.pop_front();
                done += 1;
            }
        }
        tick += 1;
    }
    Ok(reward)
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Trains, evaluates, prints; Ok(false) when the learning did not pay.
fn run() -> Result<bool, Error> {
    let mut agent = Agent::new(SPEC)?;
    println!("dlsched-routing (Rust), libdlsched {}", version_string());
    println!(
        "{} replicas, speeds {}/{}/{} work units per tick, {:.1} requests per tick of 1..4 units",
        N_REPLICAS, SPEED[0], SPEED[1], SPEED[2], ARRIVAL_RATE
    );

    let train = simulate(Policy::Learning, &mut agent, 1, TRAIN_REQUESTS)?;
    let first = mean(&train[..CHUNK]);
    let last = mean(&train[TRAIN_REQUESTS - CHUNK..]);
    println!(
        "training, {} requests; mean reward (= -latency in ticks):",
        TRAIN_REQUESTS
    );
    println!("  decisions {:>5}..{:<5}  {:8.3}", 1, CHUNK, first);
    println!(
        "  decisions {:>5}..{:<5}  {:8.3}",
        TRAIN_REQUESTS - CHUNK + 1,
        TRAIN_REQUESTS,
        last
    );

    let learned = mean(&simulate(Policy::Learned, &mut agent, 2, EVAL_REQUESTS)?);
    let random = mean(&simulate(Policy::Random, &mut agent, 2, EVAL_REQUESTS)?);
    println!(
        "evaluation on unseen arrivals, {} requests; mean reward:",
        EVAL_REQUESTS
    );
    println!("  learned (greedy)        {:8.3}", learned);
    println!("  uniform random          {:8.3}", random);

    let s = agent.stats()?;
    println!(
        "agent: decisions={} observed={} expired={} train_steps={} epsilon={:.3}",
        s.decisions, s.observed, s.tickets_expired, s.train_steps, s.epsilon
    );

    let mut ok = true;
    if last <= first {
        println!(
            "FAIL: the last {} training decisions earned no more than the first {}",
            CHUNK, CHUNK
        );
        ok = false;
    }
    if learned <= random {
        println!("FAIL: the learned policy does not beat uniform random routing");
        ok = false;
    }
    if s.observed != TRAIN_REQUESTS as u64 || s.tickets_expired != 0 {
        println!("FAIL: every training ticket should have been observed once");
        ok = false;
    }
    if ok {
        println!(
            "PASS: learned beats random by {:.3} per request",
            learned - random
        );
    }
    Ok(ok)
}

fn main() {
    let code = match run() {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("dlsched-routing: {}", e);
            1
        }
    };
    std::process::exit(code); // the agent was dropped (freed) inside run()
}
