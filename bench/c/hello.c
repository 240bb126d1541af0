/* hello — the gateway's ceiling: a CGI program that reads its body and answers, nothing else. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void) {
    const char *cl = getenv("CONTENT_LENGTH");
    long left = cl ? strtol(cl, NULL, 10) : 0;
    char buf[65536];
    while (left > 0) {
        ssize_t n = read(0, buf, left < (long)sizeof buf ? left : (long)sizeof buf);
        if (n <= 0) break;
        left -= n;
    }
    fputs("Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"ok\":true}\n", stdout);
    return 0;
}
