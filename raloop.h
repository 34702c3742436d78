/* raloop.h: the application-facing API in one include. Protocol engines
 * (ws/frame.h, ws/message.h, attest/tunnel_msg.h, ...) are installed too and
 * can be included on their own. */
#ifndef RALOOP_H
#define RALOOP_H
#include "raloop/core/buf.h"
#include "raloop/core/file.h"
#include "raloop/core/listen.h"
#include "raloop/core/log.h"
#include "raloop/core/loop.h"
#include "raloop/core/proxy_proto.h"
#include "raloop/core/pump.h"
#include "raloop/core/stream.h"
#include "raloop/core/tls.h"
#include "raloop/http/request.h"
#include "raloop/http/response.h"
#include "raloop/http/proxy.h"
#include "raloop/http/router.h"
#include "raloop/http/server.h"
#include "raloop/ws/client.h"
#include "raloop/ws/ws.h"
#include "raloop/ws/relay.h"
#include "raloop/attest/quote/collateral.h"
#include "raloop/attest/quote/provider.h"
#include "raloop/attest/quote/quote.h"
#include "raloop/attest/quote/sim.h"
#include "raloop/attest/tunnel/client.h"
#include "raloop/attest/tunnel/server.h"
#include "raloop/attest/quote/verify.h"
#include "raloop/serve/serve.h"
#include "raloop/serve/metrics.h"
#include "raloop/serve/workers.h"
#include "raloop/store/sealed.h"
#endif
