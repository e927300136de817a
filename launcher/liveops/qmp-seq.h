/* qmp-seq: a QMP exchange written once, as a step function, and run two ways: blocking (lo_seq_run: the
 * liveops CLI, the launcher's start-up) or on the launcher's loop (lo_seq_start: qmp_send replies and
 * loop timers, so signals, the console and the control socket are served meanwhile). */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "loop.h"
#include "qmp.h"

/* What the step asks for next: a command, or (command NULL) a pause of wait_ms after which the step is
 * called again; with event set the pause ends early on that event (a hint: the step polls for the truth).
 * A command with event set expects that event (data.key == value) within wait_ms of being sent: the step
 * is called once both the reply and the event are in (the waiter is registered before the command goes
 * out, so a quick event is not missed); an event that did not come is a qerr (ETIMEDOUT, may_fail). */
typedef struct lo_next {
        const char *command;
        cJSON *args;   /* consumed */
        bool may_fail; /* a failure reply goes to the step as qerr instead of ending the sequence */
        int wait_ms;
        const char *event, *key, *value;
} lo_next;

enum { LO_SEQ_DONE = 0, LO_SEQ_NEXT = 1 };

/* ret: the previous command's reply; qerr: its failure (only with may_fail; a failure otherwise ends the
 * sequence with the error, prefixed with the command's name). Both NULL on the first call and after a
 * pause. Returns LO_SEQ_NEXT with *next filled, LO_SEQ_DONE, or <0 with err set. */
typedef int (*lo_step_fn)(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *next, kv_error *err);

/* Blocking: steps until done. */
int lo_seq_run(qmp *q, lo_step_fn step, void *ctx, kv_error *err);

/* The loop's side. */
typedef struct lo_seq_host {
        loop *loop;
        qmp *(*qmp)(void *ctx);   /* NULL once the connection is gone */
        void (*rearm)(void *ctx); /* after queueing a command */
        void *ctx;
} lo_seq_host;

typedef struct lo_seq lo_seq;
/* r: 0 done, <0 failed (err). Called once, from a QMP callback or a timer; s may be freed in it. */
typedef void (*lo_seq_done_fn)(lo_seq *s, int r, const kv_error *err, void *userdata);

struct lo_seq {
        lo_seq_host h;
        lo_step_fn step;
        void *ctx;
        lo_seq_done_fn done;
        void *userdata;
        char command[64]; /* the one in flight */
        bool may_fail, pausing, expecting, replied;
        int64_t pending, waiter; /* the command and the event waiter in flight (0: none) */
        cJSON *reply;            /* a reply kept until the expected event came */
        kv_error qerr;           /* the failure kept meanwhile (code 0: none) */
        loop_timer timer;
};

/* Runs the first step now (its command is queued; done may already have been called on return). */
void lo_seq_start(lo_seq *s, const lo_seq_host *h, lo_step_fn step, void *ctx, lo_seq_done_fn done,
                  void *userdata);
/* Stops it without calling done (its command's late reply is ignored). */
void lo_seq_abort(lo_seq *s);
bool lo_seq_running(const lo_seq *s);

/* A step of its own, for sequences that embed it: wait until job `id` is concluded (query-jobs, woken
 * by its JOB_STATUS_CHANGE), dismiss it, and turn its "error" member into -EIO (lo_job_finish). */
typedef struct lo_job_seq {
        char id[160];
        int timeout_ms, step;
        int64_t deadline;
        int outcome;
        kv_error err;
} lo_job_seq;
void lo_job_seq_init(lo_job_seq *j, const char *id, int timeout_ms);
int lo_job_step(void *ctx, const cJSON *ret, const kv_error *qerr, lo_next *next, kv_error *err);
