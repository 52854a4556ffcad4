/*
 * tickets.h - the bounded table of pending decisions
 *
 * A ticket encodes its slot: ticket = seq << slot_bits | slot, with seq
 * counting issues from 1, so lookup is one load and one compare. Pending
 * tickets sit on a list in issue order, so the oldest is found in O(1) when
 * the table is full. Tickets stay unique over the last 2^(64 - slot_bits)
 * issued. Not thread-safe by itself: the agent serialises access.
 */
#ifndef DLS_TICKETS_H
#define DLS_TICKETS_H

#include <stddef.h>
#include <stdint.h>

#define DLS_NO_SLOT UINT32_MAX

typedef struct dls_tickets {
    uint64_t *id;        /* ticket in each slot, 0 = free */
    uint32_t *prev;      /* issue-order list of pending slots */
    uint32_t *next;
    int32_t *action;     /* the decision's action */
    unsigned char *key;  /* backend encoding of the decision's state */
    size_t key_bytes;
    uint32_t *free_slots; /* stack of free slots */
    uint32_t n_free;
    uint32_t head, tail; /* oldest and newest pending, DLS_NO_SLOT when none */
    uint32_t cap;
    unsigned slot_bits;
    uint64_t seq;
} dls_tickets;

int dls_tickets_init(dls_tickets *t, uint32_t cap, size_t key_bytes);
void dls_tickets_free(dls_tickets *t);
size_t dls_tickets_bytes(uint32_t cap, size_t key_bytes);

static inline uint32_t dls_tickets_pending(const dls_tickets *t)
{
    return t->cap - t->n_free;
}

/* slot of a pending ticket, or DLS_NO_SLOT for unknown/expired/observed */
static inline uint32_t dls_tickets_find(const dls_tickets *t, uint64_t ticket)
{
    uint64_t slot = ticket & (((uint64_t)1 << t->slot_bits) - 1);
    if (ticket == 0 || slot >= t->cap || t->id[slot] != ticket)
        return DLS_NO_SLOT;
    return (uint32_t)slot;
}

static inline unsigned char *dls_tickets_key(const dls_tickets *t, uint32_t slot)
{
    return t->key + (size_t)slot * t->key_bytes;
}

/* Take a free slot (the caller makes room first when none is free) and
   return its new ticket. */
uint64_t dls_tickets_issue(dls_tickets *t, int32_t action, uint32_t *slot_out);
/* Release a pending slot (observed or expired). */
void dls_tickets_release(dls_tickets *t, uint32_t slot);

#endif
