/* raloop.h: the application-facing API in one include. Protocol engines
 * (ws/frame.h, ws/message.h, attest/tunnel_msg.h, ...) are installed too and
 * can be included on their own. */
#ifndef RALOOP_H
#define RALOOP_H
#include "core/buf.h"
#include "core/file.h"
#include "core/listen.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/stream.h"
#include "http/request.h"
#include "http/response.h"
#include "http/router.h"
#include "http/server.h"
#include "ws/client.h"
#include "ws/ws.h"
#include "attest/provider.h"
#include "attest/quote.h"
#include "attest/sim.h"
#include "attest/tunnel_client.h"
#include "attest/tunnel_server.h"
#include "attest/verify.h"
#endif
