/* The floor for a burst: how fast this machine starts processes without Python.

   spawnloop SLOT N CONCURRENCY OUT PROGRAM [ARGS...]

   Sleeps until SLOT (Unix time, seconds with a fraction), then starts N copies of
   PROGRAM with posix_spawn, at most CONCURRENCY alive at once (waitpid for any before
   the next), each with its stdout appended to OUT; exits 0 once all have ended, 1 if
   any could not start or failed. bench/_burst.py compiles it with `cc -O2`. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int reap_one(void) {
    int status;
    while (waitpid(-1, &status, 0) < 0) {
        if (errno != EINTR) return 1;
    }
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: spawnloop SLOT N CONCURRENCY OUT PROGRAM [ARGS...]\n");
        return 2;
    }
    double slot = atof(argv[1]);
    long n = atol(argv[2]), concurrency = atol(argv[3]);
    int out = open(argv[4], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (out < 0 || n < 0 || concurrency < 1) {
        perror("spawnloop");
        return 2;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO);

    struct timespec at = {.tv_sec = (time_t)floor(slot)};
    at.tv_nsec = (long)((slot - floor(slot)) * 1e9);
    while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &at, NULL) == EINTR) {
    }

    int failed = 0;
    long alive = 0;
    for (long i = 0; i < n; i++) {
        if (alive == concurrency) {
            failed |= reap_one();
            alive--;
        }
        pid_t pid;
        if (posix_spawn(&pid, argv[5], &actions, NULL, &argv[5], environ) != 0) {
            failed = 1;
            continue;
        }
        alive++;
    }
    for (; alive > 0; alive--) failed |= reap_one();
    return failed;
}
