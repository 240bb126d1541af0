/* floor — the C floor handler: the minimum honest work of webhook-receive, as a CGI program.
 *
 * Reads the CGI request (CONTENT_LENGTH bytes of body from stdin), verifies GitHub's
 * X-Hub-Signature-256 (HMAC-SHA256 of the raw body, libsodium, constant-time compare) with the
 * key in $FLOOR_KEY_FILE, inserts the delivery (X-GitHub-Delivery) into the SQLite database
 * $FLOOR_DB (WAL, synchronous=NORMAL, busy timeout, as draven opens its store), and answers JSON.
 * What it leaves out that draven does: routing, config/integration lookup, the encrypted secrets
 * store, JSON parsing, event mapping, audit of refusals, problem+json.
 */
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int answer(int status, const char *json) {
    printf("Status: %d\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", status, strlen(json), json);
    return 0;
}

int main(void) {
    const char *cl = getenv("CONTENT_LENGTH"), *sig = getenv("HTTP_X_HUB_SIGNATURE_256");
    const char *delivery = getenv("HTTP_X_GITHUB_DELIVERY"), *db_path = getenv("FLOOR_DB"), *key_path = getenv("FLOOR_KEY_FILE");
    long length = cl ? strtol(cl, NULL, 10) : 0;
    if (length <= 0 || length > (25L << 20)) return answer(400, "{\"error\":\"body\"}\n");
    unsigned char *body = malloc(length);
    for (long got = 0; got < length;) {
        ssize_t n = read(0, body + got, length - got);
        if (n <= 0) return answer(400, "{\"error\":\"short body\"}\n");
        got += n;
    }
    if (sodium_init() < 0 || !db_path || !key_path) return answer(500, "{\"error\":\"setup\"}\n");
    unsigned char key[256];
    FILE *kf = fopen(key_path, "rb");
    size_t key_len = kf ? fread(key, 1, sizeof key, kf) : 0;
    if (kf) fclose(kf);
    unsigned char mac[crypto_auth_hmacsha256_BYTES], given[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, key_len);
    crypto_auth_hmacsha256_update(&st, body, length);
    crypto_auth_hmacsha256_final(&st, mac);
    size_t given_len = 0;
    if (!sig || strncmp(sig, "sha256=", 7) != 0 ||
        sodium_hex2bin(given, sizeof given, sig + 7, strlen(sig + 7), NULL, &given_len, NULL) != 0 || given_len != sizeof given ||
        sodium_memcmp(given, mac, sizeof mac) != 0)
        return answer(401, "{\"error\":\"signature\"}\n");
    if (!delivery || !*delivery) return answer(400, "{\"error\":\"delivery\"}\n");

    sqlite3 *db;
    sqlite3_stmt *stmt;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) return answer(503, "{\"error\":\"db\"}\n");
    sqlite3_busy_timeout(db, 10000);
    sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    if (sqlite3_prepare_v2(db, "INSERT INTO deliveries (delivery_id, received_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING", -1, &stmt, NULL) != SQLITE_OK)
        return answer(503, "{\"error\":\"db\"}\n");
    sqlite3_bind_text(stmt, 1, delivery, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)time(NULL));
    if (sqlite3_step(stmt) != SQLITE_DONE) return answer(503, "{\"error\":\"busy\"}\n");
    int inserted = sqlite3_changes(db);
    sqlite3_finalize(stmt);
    answer(200, inserted ? "{\"status\":\"recorded\"}\n" : "{\"status\":\"duplicate\"}\n");
    fflush(stdout);
    sqlite3_close(db);
    return 0;
}
