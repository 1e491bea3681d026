// zlib, for reading rotated logs compressed with gzip (logrotate's `compress`). Debian's zlib1g-dev.
#ifndef CLINGER_ZLIB_H
#define CLINGER_ZLIB_H
#include <zlib.h>
#endif
