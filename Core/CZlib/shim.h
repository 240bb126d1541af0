#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H
/* zlib (https://zlib.net/manual.html): archived job logs are stored deflate-compressed
 * (Core/DravenCore/Jobs/LogCompression.swift). Linked statically into the functions (libz.a from
 * zlib1g-dev), like sqlite3 and sodium. compress2/uncompress are plain functions: no shim needed
 * beyond the header. */
#include <zlib.h>
#endif
