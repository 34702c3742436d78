/* core/log.h: the logger, the library's only global state. */
#ifndef RA_CORE_LOG_H
#define RA_CORE_LOG_H

#include "raloop/core/api.h"

typedef enum { RA_LOG_DEBUG, RA_LOG_INFO, RA_LOG_WARN, RA_LOG_ERROR, RA_LOG_OFF } ra_log_level;

/* Default: INFO to stderr, one line per message with a UTC timestamp. */
RA_API void ra_log_set_level(ra_log_level level);
RA_API ra_log_level ra_log_get_level(void);
/* Replace the sink (NULL restores stderr). msg is valid during the call. */
typedef void (*ra_log_fn)(ra_log_level level, const char *msg, void *ud);
RA_API void ra_log_set_sink(ra_log_fn fn, void *ud);

RA_API void ra_log(ra_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ra_debug(...) ra_log(RA_LOG_DEBUG, __VA_ARGS__)
#define ra_info(...)  ra_log(RA_LOG_INFO, __VA_ARGS__)
#define ra_warn(...)  ra_log(RA_LOG_WARN, __VA_ARGS__)
#define ra_error(...) ra_log(RA_LOG_ERROR, __VA_ARGS__)

#endif
