# nginx.conf pieces for the tests and benchmarks that run nginx beside
# raloop's programs; functions only, so a script sources it wherever:
#   . "$(dirname "$0")/../nginx_conf.sh"    (the path from the script)
#   { nginx_main "$d" "worker_connections 256;"; cat <<CONF
#   http {
#   $(nginx_temp_paths "$d")
#     server { ... }
#   }
#   CONF
#   } >"$d/nginx.conf"

# nginx_main DIR EVENTS: the start of an nginx.conf for one unprivileged
# nginx in the foreground (its pid and DIR/logs/error.log in DIR), with
# `events { EVENTS }`; the caller appends its http or stream block.
nginx_main() {
  cat <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { $2 }
CONF
}
# nginx_temp_paths DIR: in an http block, every temp file in DIR/tmp (not
# in the compiled-in paths, which are root's)
nginx_temp_paths() {
  local k
  for k in client_body proxy fastcgi uwsgi scgi; do echo "  ${k}_temp_path $1/tmp;"; done
}
