/* tickets.c - bounded ticket table (see tickets.h) */
#include "tickets.h"

#include <stdlib.h>
#include <string.h>

size_t dls_tickets_bytes(uint32_t cap, size_t key_bytes)
{
    return (size_t)cap * (sizeof(uint64_t) + 4 * sizeof(uint32_t) + sizeof(int32_t) + key_bytes);
}

int dls_tickets_init(dls_tickets *t, uint32_t cap, size_t key_bytes)
{
    memset(t, 0, sizeof *t);
    t->cap = cap;
    t->key_bytes = key_bytes;
    t->slot_bits = 1; /* >= 1 keeps every shift below 64 */
    while (((uint64_t)1 << t->slot_bits) < cap)
        t->slot_bits++;
    t->id = calloc(cap, sizeof *t->id);
    t->prev = malloc(cap * sizeof *t->prev);
    t->next = malloc(cap * sizeof *t->next);
    t->action = malloc(cap * sizeof *t->action);
    t->key = calloc(cap, key_bytes ? key_bytes : 1);
    t->free_slots = malloc(cap * sizeof *t->free_slots);
    if (!t->id || !t->prev || !t->next || !t->action || !t->key || !t->free_slots) {
        dls_tickets_free(t);
        return -1;
    }
    /* touch every page now so that acting never page-faults */
    memset(t->prev, 0xff, cap * sizeof *t->prev);
    memset(t->next, 0xff, cap * sizeof *t->next);
    memset(t->action, 0, cap * sizeof *t->action);
    memset(t->id, 0, cap * sizeof *t->id);
    memset(t->key, 0, cap * (key_bytes ? key_bytes : 1));
    /* slot 0 on top of the stack */
    for (uint32_t i = 0; i < cap; i++)
        t->free_slots[i] = cap - 1 - i;
    t->n_free = cap;
    t->head = t->tail = DLS_NO_SLOT;
    t->seq = 0;
    return 0;
}

void dls_tickets_free(dls_tickets *t)
{
    free(t->id);
    free(t->prev);
    free(t->next);
    free(t->action);
    free(t->key);
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
    t->id[slot] = ticket;
    t->action[slot] = action;
    t->prev[slot] = t->tail;
    t->next[slot] = DLS_NO_SLOT;
    if (t->tail != DLS_NO_SLOT)
        t->next[t->tail] = slot;
    else
        t->head = slot;
    t->tail = slot;
    *slot_out = slot;
    return ticket;
}

void dls_tickets_release(dls_tickets *t, uint32_t slot)
{
    uint32_t p = t->prev[slot], n = t->next[slot];
    if (p != DLS_NO_SLOT)
        t->next[p] = n;
    else
        t->head = n;
    if (n != DLS_NO_SLOT)
        t->prev[n] = p;
    else
        t->tail = p;
    t->id[slot] = 0;
    t->free_slots[t->n_free++] = slot;
}
