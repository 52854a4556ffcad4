/* tickets.c - bounded ticket table (see tickets.h) */
#include "tickets.h"

#include <stdlib.h>
#include <string.h>

static size_t dls_slot_stride(size_t key_bytes)
{
    /* keep every slot 8-byte aligned */
    return sizeof(dls_slot) + ((key_bytes + 7) & ~(size_t)7);
}

size_t dls_tickets_bytes(uint32_t cap, size_t key_bytes)
{
    return (size_t)cap * (dls_slot_stride(key_bytes) + sizeof(uint32_t));
}

int dls_tickets_init(dls_tickets *t, uint32_t cap, size_t key_bytes)
{
    memset(t, 0, sizeof *t);
    t->cap = cap;
    t->key_bytes = key_bytes;
    t->stride = dls_slot_stride(key_bytes);
    t->slot_bits = 1; /* >= 1 keeps every shift below 64 */
    while (((uint64_t)1 << t->slot_bits) < cap)
        t->slot_bits++;
    t->slots = malloc((size_t)cap * t->stride);
    t->free_slots = malloc(cap * sizeof *t->free_slots);
    if (!t->slots || !t->free_slots) {
        dls_tickets_free(t);
        return -1;
    }
    /* touch every page now so that acting never page-faults */
    memset(t->slots, 0, (size_t)cap * t->stride);
    for (uint32_t i = 0; i < cap; i++) {
        dls_slot *s = dls_tickets_slot(t, i);
        s->prev = s->next = DLS_NO_SLOT;
        t->free_slots[i] = cap - 1 - i; /* slot 0 on top of the stack */
    }
    t->n_free = cap;
    t->head = t->tail = DLS_NO_SLOT;
    t->seq = 0;
    return 0;
}

void dls_tickets_free(dls_tickets *t)
{
    free(t->slots);
    free(t->free_slots);
    memset(t, 0, sizeof *t);
}

uint64_t dls_tickets_issue(dls_tickets *t, int32_t action, uint32_t *slot_out)
{
    uint32_t slot = t->free_slots[--t->n_free];
    uint64_t seq_max = ((uint64_t)1 << (64 - t->slot_bits)) - 1;
    if (++t->seq > seq_max) /* wrap after 2^(64-slot_bits) tickets; 0 is never issued */
        t->seq = 1;
    uint64_t ticket = (t->seq << t->slot_bits) | slot;
    dls_slot *s = dls_tickets_slot(t, slot);
    s->id = ticket;
    s->action = action;
    s->prev = t->tail;
    s->next = DLS_NO_SLOT;
    if (t->tail != DLS_NO_SLOT)
        dls_tickets_slot(t, t->tail)->next = slot;
    else
        t->head = slot;
    t->tail = slot;
    *slot_out = slot;
    return ticket;
}

void dls_tickets_release(dls_tickets *t, uint32_t slot)
{
    dls_slot *s = dls_tickets_slot(t, slot);
    uint32_t p = s->prev, n = s->next;
    if (p != DLS_NO_SLOT)
        dls_tickets_slot(t, p)->next = n;
    else
        t->head = n;
    if (n != DLS_NO_SLOT)
        dls_tickets_slot(t, n)->prev = p;
    else
        t->tail = p;
    s->id = 0;
    t->free_slots[t->n_free++] = slot;
}
