/*
 * tickets.h - the bounded table of pending decisions
 *
 * A ticket encodes its slot: ticket = seq << slot_bits | slot, with seq
 * counting issues from 1, so lookup is one load and one compare. Pending
 * tickets sit on a list in issue order, so the oldest is found in O(1) when
 * the table is full. Each slot keeps its id, list links, action and the
 * backend's state key together, so a ticket operation touches one or two
 * cache lines. Tickets stay unique over the last 2^(64 - slot_bits) issued.
 * Not thread-safe by itself: the agent serialises access.
 */
#ifndef DLS_TICKETS_H
#define DLS_TICKETS_H

#include <stddef.h>
#include <stdint.h>

#define DLS_NO_SLOT UINT32_MAX

typedef struct dls_slot {
    uint64_t id;     /* ticket in this slot, 0 = free */
    uint32_t prev;   /* issue-order list of pending slots */
    uint32_t next;
    int32_t action;  /* the decision's action */
    uint32_t pad;
    uint64_t born_ns; /* issue time (CLOCK_MONOTONIC), for ticket_timeout_ms */
    uint64_t version; /* the model version that decided (exchange records it) */
    /* followed by key_bytes of the backend's state key */
} dls_slot;

typedef struct dls_tickets {
    unsigned char *slots; /* cap slots of stride bytes */
    size_t stride;
    size_t key_bytes;
    uint32_t *free_slots; /* stack of free slots */
    uint32_t n_free;
    uint32_t head, tail;  /* oldest and newest pending, DLS_NO_SLOT when none */
    uint32_t cap;
    unsigned slot_bits;
    uint64_t seq;
} dls_tickets;

int dls_tickets_init(dls_tickets *t, uint32_t cap, size_t key_bytes);
void dls_tickets_free(dls_tickets *t);
size_t dls_tickets_bytes(uint32_t cap, size_t key_bytes);

static inline dls_slot *dls_tickets_slot(const dls_tickets *t, uint32_t slot)
{
    return (dls_slot *)(void *)(t->slots + (size_t)slot * t->stride);
}

static inline unsigned char *dls_tickets_key(const dls_tickets *t, uint32_t slot)
{
    return t->slots + (size_t)slot * t->stride + sizeof(dls_slot);
}

static inline int32_t dls_tickets_action(const dls_tickets *t, uint32_t slot)
{
    return dls_tickets_slot(t, slot)->action;
}

static inline uint32_t dls_tickets_pending(const dls_tickets *t)
{
    return t->cap - t->n_free;
}

/* slot of a pending ticket, or DLS_NO_SLOT for unknown/expired/observed */
static inline uint32_t dls_tickets_find(const dls_tickets *t, uint64_t ticket)
{
    uint64_t slot = ticket & (((uint64_t)1 << t->slot_bits) - 1);
    if (ticket == 0 || slot >= t->cap || dls_tickets_slot(t, (uint32_t)slot)->id != ticket)
        return DLS_NO_SLOT;
    return (uint32_t)slot;
}

static inline uint32_t dls_tickets_oldest(const dls_tickets *t)
{
    return t->head;
}

/* Take a free slot (the caller makes room first when none is free) and
   return its new ticket. */
uint64_t dls_tickets_issue(dls_tickets *t, int32_t action, uint32_t *slot_out);
/* Release a pending slot (observed or expired). */
void dls_tickets_release(dls_tickets *t, uint32_t slot);

#endif
