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
/* The value of the last response's header `name` (case-insensitive; the last one when repeated), or NULL.
   Wraps curl_easy_header (libcurl >= 7.83) so Swift need not import CURLH_HEADER, a macro. Valid until the
   handle is reused or cleaned up: copy it at once. */
static inline const char *ccurl_response_header(CURL *h, const char *name) {
  struct curl_header *out = NULL;
  if (curl_easy_header(h, name, 0, CURLH_HEADER, -1, &out) != CURLHE_OK || out == NULL) return NULL;
  if (out->amount > 1 && curl_easy_header(h, name, out->amount - 1, CURLH_HEADER, -1, &out) != CURLHE_OK) return NULL;
  return out->value;
}
#endif
