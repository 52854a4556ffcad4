/*
 * layout.h - the DQN's flat parameter layout (described in dqn.h), computed
 * in one place for the CPU DQN (dqn.c) and the CUDA plugin. Plain C, header
 * only.
 */
#ifndef DLS_LAYOUT_H
#define DLS_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

/* where the head's parameters start; maxw = the widest of n_actions and
   the widths w[0..L] */
typedef struct dls_layout {
    size_t offWq, offbq;               /* plain head */
    size_t offWv, offbv, offWa, offba; /* dueling head */
    uint32_t maxw;
} dls_layout;

/* offW[l] and offb[l] of the L trunk layers over widths w[0..L], then the
   head of na actions (dueling or plain) into *hd; returns the number of
   parameters */
static inline size_t dls_layout_compute(uint32_t L, const uint32_t *w, uint32_t na, int dueling,
                                        size_t *offW, size_t *offb, dls_layout *hd)
{
    size_t n = 0, h = w[L];
    hd->maxw = na;
    for (uint32_t l = 0; l <= L; l++)
        if (w[l] > hd->maxw)
            hd->maxw = w[l];
    for (uint32_t l = 0; l < L; l++) {
        offW[l] = n;
        n += (size_t)w[l + 1] * w[l];
        offb[l] = n;
        n += w[l + 1];
    }
    hd->offWq = hd->offbq = hd->offWv = hd->offbv = hd->offWa = hd->offba = 0;
    if (!dueling) {
        hd->offWq = n;
        n += (size_t)na * h;
        hd->offbq = n;
        n += na;
    } else {
        hd->offWv = n;
        n += h;
        hd->offbv = n;
        n += 1;
        hd->offWa = n;
        n += (size_t)na * h;
        hd->offba = n;
        n += na;
    }
    return n;
}

#endif
