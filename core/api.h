/* core/api.h: what the shared libraries export. Both are built with
 * -fvisibility=hidden; a declaration in an installed header marked RA_API
 * is the public API, and nothing else is exported (tests/apps/exports.sh
 * checks it). */
#ifndef RA_CORE_API_H
#define RA_CORE_API_H

#define RA_API __attribute__((visibility("default")))

#endif
