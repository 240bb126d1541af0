#ifndef CCURL_SHIM_H
#define CCURL_SHIM_H
#include <curl/curl.h>

/* curl_easy_setopt and curl_easy_getinfo are variadic; Swift cannot call them.
   These typed wrappers are the only way draven sets options. */
static inline CURLcode ccurl_setopt_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_setopt_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode ccurl_setopt_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
typedef size_t (*ccurl_write_fn)(char *, size_t, size_t, void *);
static inline CURLcode ccurl_setopt_write_function(CURL *h, ccurl_write_fn f) { return curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, f); }
typedef size_t (*ccurl_read_fn)(char *, size_t, size_t, void *);
static inline CURLcode ccurl_setopt_read_function(CURL *h, ccurl_read_fn f) { return curl_easy_setopt(h, CURLOPT_READFUNCTION, f); }
static inline CURLcode ccurl_getinfo_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
#endif
