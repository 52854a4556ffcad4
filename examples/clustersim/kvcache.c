/*
 * kvcache.c - dlsched-sim's KV-cache model (on when a variant has
 * kv_kb_per_token; see dlsched-sim(1), KV CACHE) and the gateway's scorers
 *
 * A server's KV memory is memory_gb x memory_utilization minus the weights
 * of the variants it loads. Admission reserves a request's whole context
 * (prompt + output, in blocks of kv_block_tokens) at once, as a scheduler
 * that never preempts: a request waits in its server's FIFO until the
 * blocks it does not find in the prefix cache fit. Prompts are cut into
 * prefix blocks (prefix_block_tokens: Mooncake's hash_ids are 512 tokens);
 * after its prefill a request's full prompt blocks join the server's prefix
 * cache, pinned while it runs. Unpinned cached blocks stay until room is
 * needed and are evicted oldest first (vLLM's free-block queue: a finished
 * request's blocks join it last block first, so a prompt's tail goes before
 * its head). A request's leading prompt blocks found in the cache skip
 * their prefill.
 */
#include "simint.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- an LRU set of keys --------------------------------------------------- */
static uint32_t slot_of(uint64_t key, uint32_t mask)
{
    return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & mask;
}

static int pc_rehash(pcache *pc, uint32_t size)
{
    pc_slot *t = malloc((size_t)size * sizeof *t);
    if (!t)
        return -1;
    for (uint32_t i = 0; i < size; i++)
        t[i].i = -1;
    for (int32_t i = 0; i < pc->cap; i++)
        if (pc->e[i].ref >= 0 && pc->e[i].slot != PC_ANON) { /* in use, in the table */
            uint32_t h = slot_of(pc->e[i].key, size - 1);
            while (t[h].i >= 0)
                h = (h + 1) & (size - 1);
            t[h] = (pc_slot){pc->e[i].key, i};
            pc->e[i].slot = h;
        }
    free(pc->table);
    pc->table = t;
    pc->mask = size - 1;
    return 0;
}

static int pc_grow(pcache *pc)
{
    int32_t nc = pc->cap ? 2 * pc->cap : 64;
    pc_entry *ne = realloc(pc->e, (size_t)nc * sizeof *ne);
    if (!ne)
        return -1;
    pc->e = ne;
    for (int32_t i = nc - 1; i >= pc->cap; i--) {
        pc->e[i].ref = -1;
        pc->e[i].next = pc->free_head;
        pc->free_head = i;
    }
    pc->cap = nc;
    uint32_t size = 1;
    while (size < 2u * (uint32_t)nc)
        size <<= 1;
    return pc_rehash(pc, size);
}

int pc_init(pcache *pc, int cap)
{
    memset(pc, 0, sizeof *pc);
    pc->free_head = pc->head = pc->tail = -1;
    while (pc->cap < cap)
        if (pc_grow(pc))
            return -1;
    return 0;
}

void pc_free(pcache *pc)
{
    free(pc->e);
    free(pc->table);
    memset(pc, 0, sizeof *pc);
}

void pc_clear(pcache *pc)
{
    pc->free_head = pc->head = pc->tail = -1;
    pc->n = 0;
    pc->lru_kb = 0;
    for (int32_t i = pc->cap - 1; i >= 0; i--) {
        pc->e[i].ref = -1;
        pc->e[i].next = pc->free_head;
        pc->free_head = i;
    }
    for (uint32_t i = 0; pc->table && i <= pc->mask; i++)
        pc->table[i].i = -1;
}

int32_t pc_find(const pcache *pc, uint64_t key)
{
    if (!pc->table)
        return -1;
    for (uint32_t h = slot_of(key, pc->mask);; h = (h + 1) & pc->mask) {
        const pc_slot *t = &pc->table[h];
        if (t->i < 0)
            return -1;
        if (t->key == key)
            return t->i;
    }
}

/* the entry of key, or -1 and *slot the empty place a new one would take */
static int32_t pc_probe(const pcache *pc, uint64_t key, uint32_t *slot)
{
    for (uint32_t h = slot_of(key, pc->mask);; h = (h + 1) & pc->mask) {
        const pc_slot *t = &pc->table[h];
        if (t->i < 0) {
            *slot = h;
            return -1;
        }
        if (t->key == key)
            return t->i;
    }
}

/* pc_insert at the slot pc_probe gave (no growth needed: a free entry) */
static int32_t pc_insert_at(pcache *pc, uint64_t key, double kb, uint32_t h)
{
    int32_t i = pc->free_head;
    pc->free_head = pc->e[i].next;
    pc->table[h] = (pc_slot){key, i};
    pc->e[i] = (pc_entry){key, kb, 0, -1, -1, h, kb};
    pc->n++;
    return i;
}

/* an entry off the table: `blocks` blocks of `unit` kilobytes nobody can hit */
static int32_t pc_insert_anon(pcache *pc, int blocks, double unit)
{
    if (pc->free_head < 0 && pc_grow(pc))
        return -1;
    int32_t i = pc->free_head;
    pc->free_head = pc->e[i].next;
    pc->e[i] = (pc_entry){0, blocks * unit, 0, -1, -1, PC_ANON, unit};
    return i;
}

int32_t pc_insert(pcache *pc, uint64_t key, double kb)
{
    if (pc->free_head < 0 && pc_grow(pc))
        return -1;
    int32_t i = pc->free_head;
    pc->free_head = pc->e[i].next;
    uint32_t h = slot_of(key, pc->mask);
    while (pc->table[h].i >= 0)
        h = (h + 1) & pc->mask;
    pc->table[h] = (pc_slot){key, i};
    pc->e[i] = (pc_entry){key, kb, 0, -1, -1, h, kb};
    pc->n++;
    return i;
}

void pc_remove(pcache *pc, int32_t i)
{
    uint32_t h = pc->e[i].slot;
    if (h == PC_ANON) {
        pc->e[i].ref = -1;
        pc->e[i].next = pc->free_head;
        pc->free_head = i;
        return;
    }
    /* linear probing's deletion: shift back the entries after the hole
       that would no longer be found past it */
    for (uint32_t j = (h + 1) & pc->mask;; j = (j + 1) & pc->mask) {
        pc_slot t = pc->table[j];
        if (t.i < 0)
            break;
        uint32_t home = slot_of(t.key, pc->mask);
        /* it may move into the hole h if its home is not in (h, j] */
        if (((j - home) & pc->mask) >= ((j - h) & pc->mask)) {
            pc->table[h] = t;
            pc->e[t.i].slot = h;
            h = j;
        }
    }
    pc->table[h].i = -1;
    pc->e[i].ref = -1;
    pc->e[i].next = pc->free_head;
    pc->free_head = i;
    pc->n--;
}

void pc_lru_push(pcache *pc, int32_t i)
{
    pc->e[i].prev = pc->tail;
    pc->e[i].next = -1;
    if (pc->tail >= 0)
        pc->e[pc->tail].next = i;
    else
        pc->head = i;
    pc->tail = i;
    pc->lru_kb += pc->e[i].kb;
}

void pc_lru_unlink(pcache *pc, int32_t i)
{
    pc_entry *e = &pc->e[i];
    if (e->prev >= 0)
        pc->e[e->prev].next = e->next;
    else
        pc->head = e->next;
    if (e->next >= 0)
        pc->e[e->next].prev = e->prev;
    else
        pc->tail = e->prev;
    e->prev = e->next = -1;
    pc->lru_kb -= e->kb;
    if (pc->head < 0)
        pc->lru_kb = 0; /* no drift */
}

/* ---- prefix blocks -------------------------------------------------------- */
static uint64_t mix64(uint64_t x)
{
    /* splitmix64's finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t req_block_key(const req *r, int k, int v)
{
    uint64_t vs = (uint64_t)(v + 1) * 0x9e3779b97f4a7c15ull ^ r->salt;
    if (r->hash) /* a trace's ids already name a block with its whole prefix */
        return mix64(r->hash[k] ^ vs);
    if (k < r->group_blocks)
        return mix64(((uint64_t)r->group << 32 | (uint64_t)k) ^ vs ^ 0x5eed000000000000ull);
    /* the request's own text: chained to its id */
    return mix64(mix64(r->id ^ vs) + (uint64_t)k);
}

/* ---- the servers' caches -------------------------------------------------- */
int sim_kv_init(sim_run *s)
{
    const sim_scenario *sc = s->sc;
    s->pb_blocks = (sc->prefix_block_tokens + sc->kv_block_tokens - 1) / sc->kv_block_tokens;
    for (int v = 0; v < sc->n_var; v++)
        s->block_kb[v] = sc->kv_block_tokens * sc->var[v].kv_kb_per_token;
    /* the gateway's index holds per server as many prefix blocks as the
       server's cache (the sizing the prefix scorer's documentation advises,
       gateway-api-inference-extension prefix plugin, LRUCapacityPerServer)
       of the reference variant where loaded, else of the first loaded */
    for (int si = 0; si < s->ns; si++) {
        server *sv = &s->srv[si];
        const sim_gpu *g = &sc->gpu[sv->type];
        double w = 0;
        int vref = -1;
        for (int v = 0; v < sc->n_var; v++)
            if (g->load_mask >> v & 1) {
                w += sc->var[v].memory_gb;
                if (vref < 0 || v == sc->load_variant)
                    vref = v;
            }
        sv->kv_cap = (g->memory_gb * g->memory_utilization - w) * 1024.0 * 1024.0;
        double fit = sv->kv_cap / (s->block_kb[vref] * s->pb_blocks);
        int entries = fit < 1e8 ? (int)fit : 100000000; /* (a bound: the index grows as used) */
        if (pc_init(&sv->pc, 64) || pc_init(&s->gw_index[si], 64)) {
            sim_run_fail(s, "out of memory (prefix caches)");
            return -1;
        }
        s->gw_index_cap = si == 0 || entries < s->gw_index_cap ? entries : s->gw_index_cap;
    }
    if (s->gw_index_cap < 1)
        s->gw_index_cap = 1;
    return 0;
}

void sim_kv_reset(sim_run *s)
{
    for (int si = 0; si < s->ns; si++) {
        server *sv = &s->srv[si];
        sv->kv_used = sv->kv_pinned = sv->pf_free = sv->pf_q = 0;
        sv->snap_wait = sv->snap_run = 0;
        sv->snap_kv = 0;
        pc_clear(&sv->pc);
        pc_clear(&s->gw_index[si]);
        s->gw_cold_at[si] = 0;
    }
    s->gw_clock = 0;
    s->scrape_next = 0;
    s->hit_tokens = s->prompt_tokens = 0;
}

void sim_kv_flush(sim_run *s)
{
    for (int si = 0; si < s->ns; si++) {
        server *sv = &s->srv[si];
        /* every unpinned cached block goes; what running requests pin stays
           theirs (and joins the cache when they end) */
        while (sv->pc.head >= 0) {
            int32_t i = sv->pc.head;
            pc_lru_unlink(&sv->pc, i);
            sv->kv_used -= sv->pc.e[i].kb;
            pc_remove(&sv->pc, i);
        }
        if (sv->n == 0)
            sv->kv_used = sv->kv_pinned = 0; /* no drift */
        pc_clear(&s->gw_index[si]);
        s->gw_cold_at[si] = 0;
    }
    s->gw_clock = 0;
}

void sim_kv_free(sim_run *s)
{
    for (int si = 0; si < s->ns; si++) {
        pc_free(&s->srv[si].pc);
        pc_free(&s->gw_index[si]);
    }
}

/* KV kilobytes of a context of `tokens` tokens for variant v */
static double ctx_kb(const sim_run *s, int v, double tokens)
{
    return ceil(tokens / s->sc->kv_block_tokens) * s->block_kb[v];
}

/* the request's block keys, computed once (its variant is known), and
   room for the entries it pins */
static int32_t *req_ents(const req *r)
{
    return (int32_t *)(r->keys + r->n_blocks);
}

static int req_keys(sim_run *s, req *r)
{
    if (r->keys || !r->n_blocks)
        return 0;
    r->keys = malloc((size_t)r->n_blocks * (sizeof(uint64_t) + sizeof(int32_t)));
    if (!r->keys) {
        sim_run_fail(s, "out of memory (prefix blocks)");
        return -1;
    }
    for (int k = 0; k < r->n_blocks; k++)
        r->keys[k] = req_block_key(r, k, r->variant);
    return 0;
}

int sim_kv_admit(sim_run *s, int si, int ri)
{
    server *sv = &s->srv[si];
    req *r = &s->rq[ri];
    int v = r->variant;
    double ekb = s->block_kb[v] * s->pb_blocks;
    if (req_keys(s, r))
        return 0;
    /* the leading prompt blocks already cached */
    int h = 0;
    double hit_lru_kb = 0;
    int32_t *idx = r->n_blocks ? req_ents(r) : NULL;
    for (; h < r->n_shared; h++) {
        int32_t i = pc_find(&sv->pc, r->keys[h]);
        if (i < 0)
            break;
        if (sv->pc.e[i].ref == 0)
            hit_lru_kb += sv->pc.e[i].kb;
        idx[h] = i;
    }
    double need = ctx_kb(s, v, r->in + r->out) - h * ekb;
    if (need < 0)
        need = 0;
    /* room: free memory and the unpinned cached blocks but the hits */
    double room = sv->kv_cap - sv->kv_used + sv->pc.lru_kb - hit_lru_kb;
    if (need > room && sv->n > 0)
        return 0;
    /* (a request larger than the whole cache runs alone) */
    for (int k = 0; k < h; k++) {
        int32_t i = idx[k];
        if (sv->pc.e[i].ref++ == 0) {
            pc_lru_unlink(&sv->pc, i);
            sv->kv_pinned += sv->pc.e[i].kb;
        }
    }
    while (sv->kv_cap - sv->kv_used < need && sv->pc.head >= 0) {
        int32_t i = sv->pc.head;
        pc_entry *e = &sv->pc.e[i];
        if (e->slot == PC_ANON) {
            /* blocks nobody can hit, oldest first: as many as needed */
            double blocks = e->kb / e->unit, take = ceil((need - (sv->kv_cap - sv->kv_used)) /
                                                         e->unit);
            if (take < blocks) {
                e->kb -= take * e->unit;
                sv->pc.lru_kb -= take * e->unit;
                sv->kv_used -= take * e->unit;
                continue;
            }
        }
        pc_lru_unlink(&sv->pc, i);
        sv->kv_used -= sv->pc.e[i].kb;
        pc_remove(&sv->pc, i);
    }
    r->hits = r->cached = h;
    r->tail = 0;
    r->kv_priv = need;
    sv->kv_used += need;
    sv->kv_pinned += need;
    s->hit_tokens += (uint64_t)h * (uint64_t)s->sc->prefix_block_tokens;
    s->prompt_tokens += (uint64_t)r->in;
    return 1;
}

void sim_kv_prefilled(sim_run *s, int si, int ri)
{
    server *sv = &s->srv[si];
    req *r = &s->rq[ri];
    int v = r->variant;
    double ekb = s->block_kb[v] * s->pb_blocks;
    /* (an oversize request admitted with less than its context caches
       what its blocks cover) */
    int32_t *ents = r->n_blocks ? req_ents(r) : NULL;
    int k = r->hits;
    for (; k < r->n_shared && r->kv_priv >= ekb; k++) {
        uint64_t key = r->keys[k];
        uint32_t slot = 0;
        int32_t i = sv->pc.free_head >= 0 ? pc_probe(&sv->pc, key, &slot)
                                          : pc_find(&sv->pc, key);
        r->kv_priv -= ekb;
        if (i >= 0) {
            /* another request cached it meanwhile: share it, drop ours */
            if (sv->pc.e[i].ref++ == 0) {
                pc_lru_unlink(&sv->pc, i);
                sv->kv_pinned += sv->pc.e[i].kb;
            }
            sv->kv_used -= ekb;
            sv->kv_pinned -= ekb;
        } else {
            i = sv->pc.free_head >= 0 ? pc_insert_at(&sv->pc, key, ekb, slot)
                                      : pc_insert(&sv->pc, key, ekb);
            if (i < 0) {
                sim_run_fail(s, "out of memory (prefix cache)");
                return;
            }
            sv->pc.e[i].ref = 1; /* moves from the request's own to the cache */
        }
        ents[k] = i;
        r->cached = k + 1;
    }
    /* the blocks nobody can hit: they stay the request's until it ends,
       then join the cache as one entry (what block-by-block caching
       would hold and evict) */
    if (k == r->n_shared && k < r->n_blocks && r->kv_priv >= ekb) {
        double fit = floor(r->kv_priv / ekb);
        int left = r->n_blocks - k;
        r->tail = fit < left ? (int)fit : left;
    }
}

void sim_kv_release(sim_run *s, int si, int ri)
{
    server *sv = &s->srv[si];
    req *r = &s->rq[ri];
    /* last block first: the tail of a prompt is evicted before its head
       (a pinned entry stays where it is: its index is the request's) */
    const int32_t *ents = r->keys ? req_ents(r) : NULL;
    if (r->tail) {
        double unit = s->block_kb[r->variant] * s->pb_blocks;
        int32_t i = pc_insert_anon(&sv->pc, r->tail, unit);
        if (i < 0) {
            sim_run_fail(s, "out of memory (prefix cache)");
            return;
        }
        pc_lru_push(&sv->pc, i);
        r->kv_priv -= r->tail * unit; /* now the cache's (still held), unpinned */
        sv->kv_pinned -= r->tail * unit;
        r->tail = 0;
    }
    for (int k = r->cached - 1; k >= 0; k--) {
        int32_t i = ents[k];
        if (--sv->pc.e[i].ref == 0) {
            pc_lru_push(&sv->pc, i);
            sv->kv_pinned -= sv->pc.e[i].kb;
        }
    }
    sv->kv_used -= r->kv_priv;
    sv->kv_pinned -= r->kv_priv;
    r->kv_priv = 0;
    r->cached = 0;
    free(r->keys);
    r->keys = NULL;
    if (sv->n == 1) /* (called while r is still active) no drift */
        sv->kv_pinned = 0, sv->kv_used = sv->pc.lru_kb;
}

/* ---- the scraped signals -------------------------------------------------- */
void sim_scrape(sim_run *s)
{
    double every = s->sc->scrape_ms;
    if (every > 0 && s->now < s->scrape_next)
        return;
    for (int si = 0; si < s->ns; si++) {
        server *sv = &s->srv[si];
        sv->snap_wait = sv->qlen;
        sv->snap_run = sv->n;
        /* vLLM's kv_cache_usage: the blocks not free; unpinned cached
           blocks count as free (they are in the free queue) */
        double u = sv->kv_cap > 0 ? sv->kv_pinned / sv->kv_cap : 0;
        sv->snap_kv = u < 0 ? 0 : u > 1 ? 1 : u;
    }
    /* the scrape at the last tick at or before now */
    if (every > 0)
        s->scrape_next = (floor(s->now / every) + 1) * every;
}

/* ---- the gateway ------------------------------------------------------------ */
/*
 * llm-d's optimized baseline as the Endpoint Picker runs it: each scorer
 * gives every candidate a score in [0, 1], the picker takes the highest
 * weighted sum (gateway_weights, default queue 2, kv 2, prefix 3, no-hit
 * LRU 2) and breaks ties at random. The scorers, as in their sources:
 *   queue   (gateway-api-inference-extension, scorer/queue.go):
 *           (max_q - q) / (max_q - min_q) over the candidates' waiting
 *           queues; 1 for all when they are equal
 *   kv      (scorer/kvcache_utilization.go): 1 - KV usage fraction
 *   prefix  (plugins/multi/prefix/plugin.go): matched / total blocks of the
 *           request, matched = the blocks a server's entry in the picker's
 *           own index holds, counted over the leading blocks that some
 *           candidate holds (the greedy walk stops at the first block no
 *           server has); the index records every routed request's blocks
 *           for its server, LRU per server (what the picker routed, not
 *           what the cache holds). Unlike the plugin, no model-name block
 *           leads the hashes (each variant's keys differ already).
 *   no-hit LRU (llm-d-inference-scheduler, scorer/no_hit_lru.go): for a
 *           cold request (no candidate matched a block), rank servers by
 *           their last cold request: never used first (1 - i / (N - 1) in
 *           candidate order), then least recently used, rank i scoring
 *           1 - i / (N - 1); 0.5 for all on a warm request; the chosen
 *           server of a cold request becomes the most recent
 * The queue and KV signals are the scraped ones (scrape_ms old at most).
 */
void sim_gw_match(sim_run *s, const req *r, const int *cand, int nc)
{
    int cnt[SIM_MAX_SERVERS] = {0}, cv[SIM_MAX_SERVERS];
    uint32_t vars = 0;
    for (int c = 0; c < nc; c++) {
        cv[c] = r->variant >= 0 ? r->variant : sim_server_variant(s, cand[c]);
        vars |= 1u << cv[c];
    }
    for (int k = 0; k < r->n_blocks; k++) {
        uint64_t key[SIM_MAX_VAR];
        for (int v = 0; v < s->sc->n_var; v++) /* each key once */
            if (vars >> v & 1)
                key[v] = req_block_key(r, k, v);
        int any = 0;
        for (int c = 0; c < nc; c++)
            if (pc_find(&s->gw_index[cand[c]], key[cv[c]]) >= 0)
                cnt[c]++, any = 1;
        if (!any)
            break;
    }
    s->gw_cold = 1;
    for (int si = 0; si < s->ns; si++)
        s->gw_match[si] = 0;
    for (int c = 0; c < nc; c++) {
        s->gw_match[cand[c]] = r->n_blocks ? (double)cnt[c] / r->n_blocks : 0;
        if (cnt[c])
            s->gw_cold = 0;
    }
}

void sim_gw_totals(const sim_run *s, const int *cand, int nc, double *tot)
{
    const double *w = s->sc->gw_weights;
    int qmin = 1 << 30, qmax = -1;
    for (int c = 0; c < nc; c++) {
        int q = s->srv[cand[c]].snap_wait;
        qmin = q < qmin ? q : qmin;
        qmax = q > qmax ? q : qmax;
    }
    /* the no-hit LRU's ranks: the order of the last cold request over
       every server that had one (the scorer's LRU holds all of them) */
    double lru[SIM_MAX_SERVERS];
    if (s->gw_cold) {
        int never = 0;
        for (int c = 0; c < nc; c++)
            if (!s->gw_cold_at[cand[c]])
                lru[c] = nc > 1 ? 1.0 - (double)never++ / (nc - 1) : 1.0;
        for (int c = 0; c < nc; c++) {
            uint64_t t = s->gw_cold_at[cand[c]];
            if (!t)
                continue;
            int pos = 0;
            for (int si = 0; si < s->ns; si++)
                if (s->gw_cold_at[si] && s->gw_cold_at[si] < t)
                    pos++;
            double sc = nc > 1 ? 1.0 - (double)(never + pos) / (nc - 1) : 1.0;
            lru[c] = sc < 0 ? 0 : sc;
        }
    } else {
        for (int c = 0; c < nc; c++)
            lru[c] = 0.5;
    }
    for (int c = 0; c < nc; c++) {
        const server *sv = &s->srv[cand[c]];
        double q = qmax == qmin ? 1.0 : (double)(qmax - sv->snap_wait) / (qmax - qmin);
        tot[c] = w[0] * q + w[1] * (1 - sv->snap_kv) + w[2] * s->gw_match[cand[c]] +
                 w[3] * lru[c];
    }
}

int sim_gw_pick(sim_run *s, const int *cand, int nc)
{
    double tot[SIM_MAX_SERVERS];
    sim_gw_totals(s, cand, nc, tot);
    int best = cand[0], ties = 0;
    double bv = -INFINITY;
    for (int c = 0; c < nc; c++) {
        double val = tot[c];
        if (val > bv) {
            bv = val, best = cand[c], ties = 1;
        } else if (val == bv && rng_next(&s->r) % (uint64_t)++ties == 0)
            best = cand[c];
    }
    return best;
}

void sim_gw_routed(sim_run *s, const req *r)
{
    pcache *ix = &s->gw_index[r->server];
    for (int k = 0; k < r->n_blocks; k++) {
        uint64_t key = req_block_key(r, k, r->variant);
        int32_t i = pc_find(ix, key);
        if (i >= 0) {
            pc_lru_unlink(ix, i); /* touched: the newest */
        } else {
            if (ix->n >= s->gw_index_cap) {
                int32_t old = ix->head;
                pc_lru_unlink(ix, old);
                pc_remove(ix, old);
            }
            i = pc_insert(ix, key, 0);
            if (i < 0) {
                sim_run_fail(s, "out of memory (gateway index)");
                return;
            }
        }
        pc_lru_push(ix, i);
    }
    if (s->gw_cold)
        s->gw_cold_at[r->server] = ++s->gw_clock;
}
