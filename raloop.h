/* raloop.h: everything an application needs, in one include. */
#ifndef RALOOP_H
#define RALOOP_H
#include "core/buf.h"
#include "core/listen.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/stream.h"
#include "http/request.h"
#include "http/response.h"
#include "http/router.h"
#include "http/server.h"
#endif
