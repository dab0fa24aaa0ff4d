/* log.h: the builder's messages, one line each on stderr.
 *
 * systemd's discipline: an error is logged once, where it happens, with
 * what it is about (the partition, the path, the library call), and the
 * function returns the negative errno it logged:
 *
 *   return log_error_errno(r, "%s: cannot open %s: %m", what, path);
 *
 * prints "nix-repart-image: <what>: cannot open <path>: <strerror(-r)>"
 * (%m is errno's text, and errno is -r while the message is made) and
 * returns r.  The core does not print: what it refuses comes back as an
 * nri_error (nix-repart-image/error.h), which the builder logs here. */
#pragma once

#include <errno.h>
#include <stdbool.h>

#define NRI_LOG_PREFIX "nix-repart-image: "

/* Prints NRI_LOG_PREFIX and the message, with errno set to -error (when
 * negative) for %m; returns `error`. */
int nri_log_full(int error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* While muted, nothing is printed (nri_log_full() still returns its
 * error): for a trial whose failure is an answer, not an error (a file
 * system tried at a size too small, ext4-size.c).  Returns the previous
 * state. */
bool nri_log_mute(bool muted);

#define log_error_errno(r, ...) nri_log_full((r), __VA_ARGS__)
#define log_error(...) ((void)nri_log_full(0, __VA_ARGS__))
/* Progress, with --quiet left out by the caller. */
#define log_info(...) ((void)nri_log_full(0, __VA_ARGS__))
