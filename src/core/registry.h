/*
 * registry.h - THE registry of configuration keys: one line per key.
 *
 * The parser, the bounds checks and their messages, dlsched_config_get(),
 * the man page table (tools/gen_keytable.c) and the config tests all come
 * from this list. Adding a key is one line here.
 *
 * X(ID, name, type, default, qtable default, min, max, flags, choices, help)
 *   type     INT, FLOAT, ENUM, INTLIST or FLOATLIST (lists: one value or a
 *            comma list of n_features values)
 *   default  text form; NULL = required (K_REQUIRED) or unset (K_OPTIONAL)
 *   qtable default  NULL = same as default
 *   min/max  inclusive bounds of the value (of each list element)
 *   choices  "a|b|c" for ENUM, else NULL
 */
#ifndef DLS_REGISTRY_H
#define DLS_REGISTRY_H

#define DLS_GIB "1073741824"

#define DLS_KEYS(X)                                                                          \
    X(N_FEATURES, "n_features", INT, NULL, NULL, 1, 1048576, K_REQUIRED | K_SHAPE, NULL,      \
      "state width: number of features in every state")                                     \
    X(N_ACTIONS, "n_actions", INT, NULL, NULL, 1, 65536, K_REQUIRED | K_SHAPE, NULL,          \
      "number of discrete actions")                                                         \
    X(ALGO, "algo", ENUM, "dqn", NULL, 0, 0, K_SHAPE, "qtable|dqn",                           \
      "learning algorithm: tabular Q-learning or deep Q-network")                          \
    X(DEVICE, "device", ENUM, "auto", NULL, 0, 0, 0, "auto|cpu|cuda",                        \
      "where learning runs; auto = cuda when usable, else cpu")                             \
    X(SEED, "seed", INT, "1", NULL, 0, 9223372036854775807.0, 0, NULL,                       \
      "RNG seed: the same seed and inputs give the same run")                               \
    X(GAMMA, "gamma", FLOAT, "0.99", NULL, 0, 1, 0, NULL, "discount factor")                 \
    X(LR, "lr", FLOAT, "0.001", "0.1", 1e-9, 1, 0, NULL, "learning rate")                    \
    X(EXPLORE, "explore", ENUM, "egreedy", NULL, 0, 0, 0, "egreedy|softmax|hint",            \
      "exploration: random action, Boltzmann over Q, or the host's hint")                   \
    X(EPSILON_START, "epsilon_start", FLOAT, "1", NULL, 0, 1, 0, NULL,                      \
      "exploration rate at the first decision (egreedy, hint)")                             \
    X(EPSILON_END, "epsilon_end", FLOAT, "0.05", NULL, 0, 1, 0, NULL,                         \
      "exploration rate after epsilon_decay_steps decisions")                               \
    X(EPSILON_DECAY_STEPS, "epsilon_decay_steps", INT, "10000", NULL, 0, 4611686018427387904.0, \
      0, NULL, "ticketed decisions over which epsilon falls linearly")                      \
    X(TEMPERATURE, "temperature", FLOAT, "1", NULL, 1e-6, 1e6, 0, NULL,                     \
      "softmax temperature")                                                                \
    X(BINS, "bins", INTLIST, "8", NULL, 1, 1048576, K_SHAPE, NULL,                           \
      "qtable: bins per feature")                                                           \
    X(FEATURE_LOW, "feature_low", FLOATLIST, "0", NULL, -1e30, 1e30, K_SHAPE, NULL,           \
      "qtable: lower edge of each feature's range")                                         \
    X(FEATURE_HIGH, "feature_high", FLOATLIST, "1", NULL, -1e30, 1e30, K_SHAPE, NULL,         \
      "qtable: upper edge of each feature's range")                                         \
    X(REPLAY, "replay", INT, "100000", "0", 0, 4294967295.0, K_STORED, NULL,                        \
      "replay buffer capacity in transitions (0 = none; dqn needs >= 1)")                   \
    X(HIDDEN, "hidden", INTLIST, "256,256", NULL, 1, 65536, K_SHAPE, NULL,                    \
      "dqn: hidden layer widths, a comma list (ReLU layers)")                               \
    X(DUELING, "dueling", INT, "0", NULL, 0, 1, K_SHAPE, NULL,                               \
      "dqn: 1 = dueling head, Q = V + A - mean(A)")                                         \
    X(NORMALIZE, "normalize", INT, "0", NULL, 0, 1, K_SHAPE, NULL,                           \
      "dqn: 1 = standardise features with running mean and variance")                       \
    X(DOUBLE, "double", INT, "1", NULL, 0, 1, 0, NULL,                                       \
      "dqn: 1 = double DQN target (online argmax, target value)")                           \
    X(INIT, "init", ENUM, "he", NULL, 0, 0, 0, "he|torch",                                 \
      "dqn: initial weights: he = N(0, 2/fan_in), biases 0; torch = U(+-1/sqrt(fan_in))")  \
    X(CPU_KERNELS, "cpu_kernels", ENUM, "auto", NULL, 0, 0, 0, "auto|openblas|own",         \
      "dqn: matrix products on the CPU: auto = libdlsched's own AVX2/AVX-512 kernels when "  \
      "OpenBLAS runs older ones than the CPU allows, else OpenBLAS")                       \
    X(NSTEP, "nstep", INT, "1", NULL, 1, 1000, K_STORED, NULL,                                      \
      "dqn: n-step returns over consecutive observes")                                      \
    X(HUBER_DELTA, "huber_delta", FLOAT, "1", NULL, 1e-6, 1e30, 0, NULL,                     \
      "dqn: Huber loss threshold")                                                          \
    X(GRAD_CLIP, "grad_clip", FLOAT, "10", NULL, 0, 1e30, 0, NULL,                           \
      "dqn: global gradient norm clip (0 = off)")                                           \
    X(BATCH, "batch", INT, "64", NULL, 1, 65536, 0, NULL, "dqn: transitions per gradient step") \
    X(LEARNING_STARTS, "learning_starts", INT, "1000", NULL, 0, 4611686018427387904.0, 0,      \
      NULL, "dqn: transitions observed before inline training starts")                      \
    X(TRAIN_EVERY, "train_every", INT, "4", NULL, 1, 2147483647, 0, NULL,                    \
      "dqn: inline training runs every this many transitions")                              \
    X(GRADIENT_STEPS, "gradient_steps", INT, "1", NULL, 1, 65536, 0, NULL,                   \
      "dqn: gradient steps per inline training run")                                        \
    X(TARGET_UPDATE, "target_update", FLOAT, "1000", NULL, 1e-6, 1e12, 0, NULL,              \
      "dqn: >= 1 hard copy every N steps (an integer); < 1 Polyak tau")                     \
    X(ADAM_BETA1, "adam_beta1", FLOAT, "0.9", NULL, 0, 0.999999, 0, NULL,                    \
      "dqn: Adam first-moment decay")                                                       \
    X(ADAM_BETA2, "adam_beta2", FLOAT, "0.999", NULL, 0, 0.999999, 0, NULL,                  \
      "dqn: Adam second-moment decay")                                                      \
    X(ADAM_EPS, "adam_eps", FLOAT, "1e-08", NULL, 1e-12, 1, 0, NULL, "dqn: Adam epsilon")    \
    X(PER, "per", INT, "0", NULL, 0, 1, K_STORED, NULL,                                      \
      "dqn: 1 = prioritized replay (sum-tree)")                                             \
    X(SAVE_REPLAY, "save_replay", INT, "0", NULL, 0, 1, 0, NULL,                             \
      "1 = checkpoints include the replay buffer")                                          \
    X(PER_ALPHA, "per_alpha", FLOAT, "0.6", NULL, 0, 1, 0, NULL,                             \
      "dqn: priority exponent, p = (|TD error| + 1e-6)^alpha")                              \
    X(PER_BETA, "per_beta", FLOAT, "0.4", NULL, 0, 1, 0, NULL,                               \
      "dqn: importance-sampling exponent at step 0, annealed to 1")                         \
    X(PER_BETA_STEPS, "per_beta_steps", INT, "100000", NULL, 1, 4611686018427387904.0, 0,     \
      NULL, "dqn: gradient steps over which per_beta rises linearly to 1")                  \
    X(CPU_THREADS, "cpu_threads", INT, "1", NULL, 1, 256, 0, NULL,                           \
      "dqn: OpenBLAS threads training GEMMs may use, each as many as its size pays for "    \
      "(process-wide setting)")                                                             \
    X(LEARNER, "learner", ENUM, "inline", NULL, 0, 0, 0, "inline|thread|none",              \
      "inline: learn inside observe (deterministic); thread: a background learner; "        \
      "none: act and record, never train (dlsched_import_weights)")                         \
    X(EXCHANGE_CAPACITY, "exchange_capacity", INT, "0", NULL, 0, 16777216, 0, NULL,          \
      "completed transitions kept for dlsched_export_transitions (0 = none; when full the " \
      "oldest are dropped)")                                                                \
    X(PUBLISH_EVERY, "publish_every", INT, "10", NULL, 1, 2147483647, 0, NULL,               \
      "learner=thread, dqn: steps between weight publications to the act path")             \
    X(REPLAY_RATIO, "replay_ratio", FLOAT, "0", NULL, 0, 1e9, 0, NULL,                       \
      "learner=thread: most sampled per stored transitions (0 = batch / train_every)")      \
    X(TICKET_TIMEOUT_MS, "ticket_timeout_ms", INT, "0", NULL, 0, 1099511627776.0, 0, NULL,    \
      "expire tickets older than this (0 = only at capacity)")                              \
    X(APPRENTICE, "apprentice", INT, "0", NULL, 0, 4611686018427387904.0, 0, NULL,            \
      "follow the host's hint for the first N ticketed decisions")                          \
    X(APPRENTICE_AGREEMENT, "apprentice_agreement", FLOAT, "0.95", NULL, 0, 1, 0, NULL,       \
      "leave apprenticeship early at this greedy/hint agreement over 1000 decisions")       \
    X(GUARD, "guard", INT, "1", NULL, 0, 1, 0, NULL,                                        \
      "1 = with a hint, the learned policy decides only once proven better than it")        \
    X(GUARD_SHARE, "guard_share", FLOAT, "0.05", NULL, 0, 0.5, 0, NULL,                      \
      "guard: share of disagreements decided by the policy not in charge (the experiment)") \
    X(GUARD_RISK, "guard_risk", FLOAT, "0.05", NULL, 1e-9, 0.5, 0, NULL,                     \
      "guard: chance of a wrong switch or fallback per epoch of tests")                    \
    X(GUARD_MIN_SAMPLES, "guard_min_samples", INT, "30", NULL, 2, 1099511627776.0, 0, NULL,   \
      "guard: samples per arm (pairs with guard_block > 1) before the first test")          \
    X(GUARD_TESTS, "guard_tests", INT, "8", NULL, 1, 30, 0, NULL,                            \
      "guard: tests per epoch; after the last, the statistics start afresh")                \
    X(GUARD_BLOCK, "guard_block", INT, "1", NULL, 1, 1048576, 0, NULL,                     \
      "guard: 1 = randomise single disagreements; B > 1 = blocks of B decisions in pairs")  \
    X(GUARD_MIN_VISITS, "guard_min_visits", INT, "20", NULL, 0, 65535, 0, NULL,              \
      "guard: observations of a learned choice in its state's region before it is trusted") \
    X(GUARD_HASH_BITS, "guard_hash_bits", INT, "8", NULL, 1, 16, K_STORED, NULL,             \
      "guard, dqn: regions are 2^bits SimHash buckets of the standardised features")        \
    X(GUARD_UNIT, "guard_unit", ENUM, "decision", NULL, 0, 0, 0, "decision|key", \
      "guard: randomise decisions (or blocks), or the host's units (dlsched_act_unit)")      \
    X(TICKET_CAPACITY, "ticket_capacity", INT, "65536", NULL, 1, 16777216, 0, NULL,           \
      "most pending tickets; the oldest expires when full")                                 \
    X(DEFAULT_REWARD, "default_reward", FLOAT, NULL, NULL, -1e30, 1e30, K_OPTIONAL, NULL,     \
      "reward learned for expired tickets; unset = drop them")                              \
    X(MAX_TABLE_BYTES, "max_table_bytes", INT, DLS_GIB, NULL, 1, 9223372036854775807.0, 0,    \
      NULL, "qtable: largest Q-table allowed at creation")                                  \
    X(MAX_REPLAY_BYTES, "max_replay_bytes", INT, DLS_GIB, NULL, 1, 9223372036854775807.0, 0,  \
      NULL, "largest replay buffer allowed at creation")                                    \
    X(CUDA_MATH, "cuda_math", ENUM, "fp32", NULL, 0, 0, 0, "fp32|tf32",                       \
      "device=cuda: GEMM arithmetic; tf32 = tensor cores, 10-bit mantissa inputs (opt-in)")

#define DLS_KEY_ENUM_(id, ...) DLS_KEY_##id,
enum dls_key_id { DLS_KEYS(DLS_KEY_ENUM_) DLS_N_KEYS };
#undef DLS_KEY_ENUM_

enum dls_key_type { DLS_T_INT, DLS_T_FLOAT, DLS_T_ENUM, DLS_T_INTLIST, DLS_T_FLOATLIST };

enum dls_key_flags {
    DLS_K_REQUIRED = 1, /* no default: agent creation fails without it */
    DLS_K_OPTIONAL = 2, /* no default: unset is a meaningful state */
    DLS_K_SHAPE = 4,    /* fixes the shape of the learned model */
    DLS_K_STORED = 8    /* fixes the layout of state a checkpoint stores */
};

typedef struct dls_key_info {
    const char *name;
    enum dls_key_type type;
    const char *def;
    const char *def_qtable;
    double min, max;
    unsigned flags;
    const char *choices;
    const char *help;
} dls_key_info;

extern const dls_key_info dls_keys[DLS_N_KEYS];

#endif
