/* runcgi — runs a CGI program the way fcgiwrap does, many times, and times each run.
 *
 * Each run: pipes for stdin/stdout/stderr, fork, execve(program) with exactly the given
 * environment (no inherited variables), the body written to its stdin, stdout and stderr read
 * to EOF, wait4. The time is fork → reaped (wall), plus the child's user+system CPU time from
 * wait4's rusage. Prints one JSON object: every sample, in microseconds.
 *
 *   runcgi [-n RUNS] [-w WARMUP] [-i BODY] [-k KEYFILE -s VAR] [-r KEYFILE] [-q BASE] [-x STATUS] [-e NAME=VALUE]... [-f NAME=PATH]... -- PROGRAM
 *
 *   -i BODY    file fed on stdin (CONTENT_LENGTH is set to its size after substitution)
 *   -e N=V     an environment variable for the program (repeatable)
 *   -f N=PATH  an environment variable whose value is read from PATH, without its trailing
 *              newline (repeatable): for tokens, so they stay out of argv
 *   -k/-s      sign each run's body with HMAC-SHA256 (libsodium) under the key in KEYFILE and
 *              put "sha256=<hex>" in variable VAR (as GitHub's X-Hub-Signature-256)
 *   -r KEYFILE sign each run as draven's runner does: HTTP_X_DRAVEN_TIMESTAMP = now and
 *              HTTP_X_DRAVEN_SIGNATURE = "v1=" hex(HMAC-SHA256(key, timestamp "." body))
 *
 * Also recorded per run: the child's page faults (minor + major), from the same rusage.
 *
 * "@UNIQUE@" in the body and in -e values is replaced, per run, by 40 random hex digits, so each run is a new delivery with its own valid signature;
 * "@SEQ@" by BASE + the run's index (warm-up runs first), with -q BASE (default 1): for requests
 * that each need their own row, e.g. a vote on one of a range of seeded jobs.
 * A run whose output does not start with "Status: 2" (with -x STATUS: "Status: STATUS", e.g. -x 304
 * for a poll answered Not Modified) counts as a failure; failures are printed and make runcgi exit 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ENV 256
#define MARK "@UNIQUE@"
#define SEQ_MARK "@SEQ@"

static char *env_templates[MAX_ENV];
static int env_count;
static char expected[32] = "Status: 2";

static void die(const char *what) { perror(what); exit(2); }

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die(path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc(n + 1);
    if (fread(buf, 1, n, f) != (size_t)n) die(path);
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Copies `s` (length `len`) replacing every MARK with `unique` (40 chars) and every SEQ_MARK
 * with `seq` (decimal). */
static char *substitute(const char *s, size_t len, const char *unique, const char *seq, size_t *out_len) {
    size_t cap = len + 64, n = 0, mark = strlen(MARK), seq_mark = strlen(SEQ_MARK), seq_len = strlen(seq);
    char *out = malloc(cap);
    for (size_t i = 0; i < len;) {
        if (n + 64 > cap) out = realloc(out, cap *= 2);
        if (i + mark <= len && memcmp(s + i, MARK, mark) == 0) {
            memcpy(out + n, unique, 40);
            n += 40;
            i += mark;
        } else if (i + seq_mark <= len && memcmp(s + i, SEQ_MARK, seq_mark) == 0) {
            memcpy(out + n, seq, seq_len);
            n += seq_len;
            i += seq_mark;
        } else {
            out[n++] = s[i++];
        }
    }
    out[n] = 0;
    *out_len = n;
    return out;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One run. Returns 0 on a 2xx answer. */
static int run_once(char *const argv[], char **envp, const char *body, size_t body_len, double *wall, double *cpu, long *faults,
                    char *answer, size_t answer_cap) {
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) die("pipe");
    double start = now_us();
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    size_t written = 0, got = 0;
    int open_in = 1, open_out = 1, open_err = 1;
    if (body_len == 0) { close(in[1]); open_in = 0; }
    char sink[65536];
    while (open_in || open_out || open_err) {
        struct pollfd fds[3] = {{open_in ? in[1] : -1, POLLOUT, 0}, {open_out ? out[0] : -1, POLLIN, 0}, {open_err ? err[0] : -1, POLLIN, 0}};
        if (poll(fds, 3, -1) < 0) { if (errno == EINTR) continue; die("poll"); }
        if (open_in && (fds[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(in[1], body + written, body_len - written);
            if (w > 0) written += w;
            if (w < 0 || written == body_len) { close(in[1]); open_in = 0; }
        }
        if (open_out && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = read(out[0], sink, sizeof sink);
            if (r <= 0) { close(out[0]); open_out = 0; }
            else if (got < answer_cap - 1) {
                size_t keep = (size_t)r < answer_cap - 1 - got ? (size_t)r : answer_cap - 1 - got;
                memcpy(answer + got, sink, keep);
                got += keep;
            }
        }
        if (open_err && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = read(err[0], sink, sizeof sink);
            if (r <= 0) { close(err[0]); open_err = 0; }
        }
    }
    answer[got] = 0;
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) die("wait4");
    *wall = now_us() - start;
    *cpu = ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
    *faults = ru.ru_minflt + ru.ru_majflt;
    return (WIFEXITED(status) && WEXITSTATUS(status) == 0 && strncmp(answer, expected, strlen(expected)) == 0) ? 0 : 1;
}

/* "NAME=PATH" -> "NAME=<contents of PATH without trailing newlines>" */
static char *from_file(const char *spec) {
    const char *eq = strchr(spec, '=');
    if (!eq) { fprintf(stderr, "runcgi: -f wants NAME=PATH\n"); exit(2); }
    size_t len, name_len = (size_t)(eq - spec) + 1;
    char *value = slurp(eq + 1, &len);
    while (len && (value[len - 1] == '\n' || value[len - 1] == '\r')) len--;
    char *out = malloc(name_len + len + 1);
    if (!out) die("malloc");
    memcpy(out, spec, name_len);
    memcpy(out + name_len, value, len);
    out[name_len + len] = 0;
    free(value);
    return out;
}

int main(int argc, char **argv) {
    int runs = 200, warmup = 20, opt;
    long seq_base = 1;
    signal(SIGPIPE, SIG_IGN);  /* a program that answers without reading its body */
    const char *body_path = NULL, *key_path = NULL, *sig_var = NULL, *runner_key_path = NULL;
    while ((opt = getopt(argc, argv, "n:w:i:k:s:e:f:q:x:r:")) != -1) {
        switch (opt) {
        case 'n': runs = atoi(optarg); break;
        case 'w': warmup = atoi(optarg); break;
        case 'q': seq_base = atol(optarg); break;
        case 'x': snprintf(expected, sizeof expected, "Status: %s", optarg); break;
        case 'i': body_path = optarg; break;
        case 'k': key_path = optarg; break;
        case 's': sig_var = optarg; break;
        case 'r': runner_key_path = optarg; break;
        case 'e': if (env_count < MAX_ENV - 6) env_templates[env_count++] = optarg; break;
        case 'f': if (env_count < MAX_ENV - 6) env_templates[env_count++] = from_file(optarg); break;
        default: fprintf(stderr, "usage: runcgi [-n RUNS] [-w WARMUP] [-i BODY] [-k KEYFILE -s VAR] [-r KEYFILE] [-q BASE] [-x STATUS] [-e N=V]... [-f N=PATH]... -- PROGRAM\n"); return 2;
        }
    }
    if (optind >= argc || runs < 1) { fprintf(stderr, "runcgi: no program\n"); return 2; }
    if (sodium_init() < 0) die("sodium_init");
    size_t template_len = 0, key_len = 0;
    char *template = body_path ? slurp(body_path, &template_len) : strdup("");
    unsigned char *key = key_path ? (unsigned char *)slurp(key_path, &key_len) : NULL;
    size_t runner_key_len = 0;
    unsigned char *runner_key = runner_key_path ? (unsigned char *)slurp(runner_key_path, &runner_key_len) : NULL;

    double *wall = calloc(runs, sizeof *wall), *cpu = calloc(runs, sizeof *cpu);
    long *faults = calloc(runs, sizeof *faults);
    char answer[4096];
    int failures = 0;
    for (int i = -warmup; i < runs; i++) {
        unsigned char seed[20];
        char unique[41];
        randombytes_buf(seed, sizeof seed);
        sodium_bin2hex(unique, sizeof unique, seed, sizeof seed);
        char seq[32];
        snprintf(seq, sizeof seq, "%ld", seq_base + warmup + i);
        size_t body_len;
        char *body = substitute(template, template_len, unique, seq, &body_len);
        char *envp[MAX_ENV];
        int n = 0;
        for (int e = 0; e < env_count; e++) {
            size_t len;
            envp[n++] = substitute(env_templates[e], strlen(env_templates[e]), unique, seq, &len);
        }
        char length[64], signature[256];
        snprintf(length, sizeof length, "CONTENT_LENGTH=%zu", body_len);
        if (body_len) envp[n++] = length;
        if (key) {
            unsigned char mac[crypto_auth_hmacsha256_BYTES];
            crypto_auth_hmacsha256_state st;
            crypto_auth_hmacsha256_init(&st, key, key_len);
            crypto_auth_hmacsha256_update(&st, (unsigned char *)body, body_len);
            crypto_auth_hmacsha256_final(&st, mac);
            char hex[2 * sizeof mac + 1];
            sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
            snprintf(signature, sizeof signature, "%s=sha256=%s", sig_var, hex);
            envp[n++] = signature;
        }
        char stamp_env[64], runner_sig[128];
        if (runner_key) {
            char stamp[32];
            snprintf(stamp, sizeof stamp, "%ld", (long)time(NULL));
            unsigned char mac[crypto_auth_hmacsha256_BYTES];
            crypto_auth_hmacsha256_state st;
            crypto_auth_hmacsha256_init(&st, runner_key, runner_key_len);
            crypto_auth_hmacsha256_update(&st, (unsigned char *)stamp, strlen(stamp));
            crypto_auth_hmacsha256_update(&st, (unsigned char *)".", 1);
            crypto_auth_hmacsha256_update(&st, (unsigned char *)body, body_len);
            crypto_auth_hmacsha256_final(&st, mac);
            char hex[2 * sizeof mac + 1];
            sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
            snprintf(stamp_env, sizeof stamp_env, "HTTP_X_DRAVEN_TIMESTAMP=%s", stamp);
            snprintf(runner_sig, sizeof runner_sig, "HTTP_X_DRAVEN_SIGNATURE=v1=%s", hex);
            envp[n++] = stamp_env;
            envp[n++] = runner_sig;
        }
        envp[n] = NULL;
        double w, c;
        long f;
        if (run_once(&argv[optind], envp, body, body_len, &w, &c, &f, answer, sizeof answer)) {
            if (failures++ < 3) fprintf(stderr, "runcgi: run %d failed:\n%s\n", i, answer);
        }
        if (i >= 0) { wall[i] = w; cpu[i] = c; faults[i] = f; }
        free(body);
        for (int e = 0; e < env_count; e++) free(envp[e]);
    }
    printf("{\"program\":\"%s\",\"runs\":%d,\"failures\":%d,\"wall_us\":[", argv[optind], runs, failures);
    for (int i = 0; i < runs; i++) printf("%s%.1f", i ? "," : "", wall[i]);
    printf("],\"cpu_us\":[");
    for (int i = 0; i < runs; i++) printf("%s%.1f", i ? "," : "", cpu[i]);
    printf("],\"page_faults\":[");
    for (int i = 0; i < runs; i++) printf("%s%ld", i ? "," : "", faults[i]);
    printf("]}\n");
    qsort(wall, runs, sizeof *wall, cmp_double);
    fprintf(stderr, "%s: median %.0f µs (p10 %.0f, p90 %.0f), %d failures\n", argv[optind], wall[runs / 2], wall[runs / 10],
            wall[runs * 9 / 10], failures);
    return failures ? 1 : 0;
}
