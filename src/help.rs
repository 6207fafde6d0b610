//! The text of `wssh --help` and of each command's `--help`: what a user reads first. Kept apart
//! from `cli` so that parsing stays short; the README quotes these texts as they are.

pub const MAIN_HELP: &str = "\
wssh: SSH (or any TCP) over WebSocket

Usage:
  wssh client [OPTIONS] URL    stdin/stdout to a ws:// or wss:// URL (an SSH ProxyCommand)
  wssh server [OPTIONS]        WebSocket to TCP (default: 127.0.0.1:4567 to 127.0.0.1:22)
  wssh connect [OPTIONS] URL   a local HTTP CONNECT proxy (127.0.0.1:3122) into tunnels
  wssh forward --listen ADDR URL   a local port forward: each connection gets a tunnel
  wssh websockify [OPTIONS] ...    websockify's command line (also: wssh run as `websockify`)
  wssh probe [OPTIONS] URL     walk the path to a server step by step and say what fails
  wssh hash-password USER      a hashed USER:PASSWORD line for wssh server --auth-file
  wssh help COMMAND            help for one command
  wssh --version

Example ~/.ssh/config:
  Host myhost
    ProxyCommand wssh client wss://gw.example.com/
";

pub const CLIENT_HELP: &str = "\
wssh client: carry stdin and stdout over a WebSocket (use it as an SSH ProxyCommand)

Usage: wssh client [OPTIONS] URL

URL is ws://[user[:pass]@]host[:port]/path or wss://...; user:pass is sent as Basic auth.
Keep the password out of the URL (ps shows it): use WSSH_PASSWORD or --password-file.
Example: ssh -o ProxyCommand='wssh client wss://gw.example.com/ssh/%h:%p' me@db1

Options:
DIALER_OPTIONS
  -v, -vv, -q            debug, trace, or errors only [default: warnings]
  -h, --help             this text

ENVIRONMENT
stdout carries only tunnel bytes; all messages go to stderr.
Exit codes: 0 the server closed normally, 1 an error (one line on stderr), 2 a usage error,
130 ended by a signal (SIGHUP, SIGTERM, Ctrl-C).
";

pub const SERVER_HELP: &str = "\
wssh server: accept WebSocket tunnels and connect each to a TCP target

Usage: wssh server [OPTIONS] [-- PROGRAM ARGS...]

Every tunnel goes to the fixed target, unless its path is /ssh/NAME and NAME is allowed:
NAME is a name from --hosts, or HOST[:PORT] (port 22 if left out) matching an --allow rule.
With no rule, the path cannot choose: the server is never an open proxy.

Options:
  --listen ADDR          address to listen on [default: 127.0.0.1:4567]; [::1]:4567 for IPv6
  --reuse-port           listen with SO_REUSEPORT (Linux): several servers on one address,
                         the kernel spreads connections among them
  --unix-listen PATH     listen on a Unix socket at PATH instead (a stale socket left there
                         is replaced; removed at exit). Its clients have no address: the
                         per-address caps and --trusted-proxy do not apply to them
  --unix-listen-mode M   its permissions, in octal [default: 0600]
  --inetd                listen on the socket that is fd 0 (TCP or Unix), already listening
                         (inetd's wait mode, systemd's StandardInput=socket with Accept=no).
                         Without it, systemd socket activation (LISTEN_PID is wssh and
                         LISTEN_FDS=1) makes wssh listen on fd 3; either way, no --listen
  -D, --daemon           once listening, run in the background: detached from the terminal,
                         in /, stdin, stdout and stderr (so the log too) to /dev/null; paths
                         given here are made absolute first. A bind error still comes first
  --pid-file FILE        write wssh's process id to FILE once listening (after -D detaches,
                         before the launching command returns); removed at exit
  --log-file FILE        once listening, write the log to FILE (appended), not to stderr;
                         SIGHUP opens it anew (rotation), instead of stopping the server
  --syslog SERVER        send the log to syslog too: a local socket (/dev/log) or UDP
                         HOST:PORT, RFC 5424 lines as websockify's (facility user, daemon
                         with -D)
  --legacy-syslog        with --syslog: the older <PRI>wssh[PID]: lines (RFC 3164 style)
  --target HOST:PORT     the fixed target [default: 127.0.0.1:22]
  --allow PATTERN        let /ssh/ paths reach these targets (repeatable): a host glob
                         (*.internal), an IP or CIDR range (10.0.0.0/8, [fd00::/8]), then
                         :PORT, :LOW-HIGH or :* [default port: 22]. Globs match names only,
                         CIDR ranges IP addresses only (127.1 and 0x7f.1 are addresses). A
                         name (glob or --hosts) that resolves to a loopback, link-local or
                         this server's own address needs a CIDR rule for that address too.
  --hosts FILE           NAME HOST:PORT per line; /ssh/NAME goes there (re-read on change)
  --unix-target PATH     the fixed target is this Unix socket
  --tokens PATH          websockify token file, or a directory of them: `TOKEN: HOST:PORT`
                         or `TOKEN: unix_socket:PATH` lines; the request's ?token= picks the
                         target, whatever the path (re-read on change; a withdrawn token
                         ends its tunnels within 2 s)
  --tokens-read-once     read --tokens once, at start
  --token-dir DIR        the file DIR/TOKEN holds HOST:PORT
  --unix-token-dir DIR   DIR/TOKEN is a Unix socket to connect to
  --host-token           take the token from the Host header (without its port) instead
  --cert FILE --key FILE serve wss:// too (PEM chain, PKCS#8 PEM key); plain ws:// stays on
                         the same port, told apart by the first byte
  --tls-only             refuse plain ws:// (needs --cert and --key)
  --tls-min-version V    1.3 refuses TLS 1.2 clients [default: 1.2]
  --tls-ciphers LIST     OpenSSL cipher list for TLS 1.2 [default: Mozilla intermediate]
  --max-tunnels N        tunnels at once; more get 503 [default: 1000]
  --max-per-ip N         tunnels at once from one client address (IPv6: per /64; behind
                         --trusted-proxy, the address it names); more get 503
                         [default: 100; 0: no cap]
  --max-pending N        connections still in TLS or HTTP at once; when full, the one
                         silent for the longest is dropped for the newcomer [default: 256]
  --max-pending-per-ip N connections in TLS or HTTP from one address (IPv6: per /64);
                         more are refused; --trusted-proxy addresses are exempt
                         [default: 64; 0: no cap]
  --handshake-timeout S  seconds a client has, in all, to finish TLS and HTTP [default: 10]
  --connect-timeout S    seconds to resolve a target and connect to it: one deadline for
                         the lookup and all its addresses [default: 10]
  --ping S               ping after S seconds without a frame from a client; drop it after
                         4 x S [default: 30; 0: never]
  --trusted-proxy CIDR   connections from here (nginx) may name the real client in
                         X-Forwarded-For or X-Real-IP, for the log (repeatable)
  --origin URL           let web pages from this origin open tunnels (repeatable; * for
                         any): browsers send Origin, and without this they get 403
  --auth-file FILE       tunnels need HTTP Basic credentials: USER:PASSWORD lines, or the
                         hashed lines of `wssh hash-password` (# comments); read at start,
                         refused if group or others may read or write it. No or wrong
                         credentials get 401, a malformed Authorization header 403
  --auth-basic USER:PASS the same for one user given here (repeatable); ps shows it, so
                         --auth-file is better
  --verify-client        TLS clients must present a certificate signed by a --cafile CA, or
                         the TLS handshake fails; plain ws:// is refused (as --tls-only)
  --cafile FILE          with --verify-client: the PEM CA certificates to accept
  --client-cn CN         with --verify-client: only a certificate whose subject CN is one of
                         these may pass (repeatable); others get 403
  --web DIR              serve the files in DIR to browsers on the same port (GET and HEAD,
                         ws:// and wss://): index.html for a directory, no listings, no
                         dotfiles, nothing outside DIR (no symlink that leads out). Its
                         pages may open tunnels from their own origin when the Host they
                         came from is an IP address, localhost or a --server-name
  --web-listings         with --web: list a directory that has no index.html
  --web-dotfiles         with --web: serve names that start with a dot (.well-known)
  --server-name NAME     with --web or --console: a host name this server's pages are
                         served under (repeatable); behind a --trusted-proxy,
                         X-Forwarded-Host and X-Forwarded-Proto say which name and scheme
                         the browser used
  --console              serve a browser console (/_wssh/console/, and / without --web): a
                         terminal to the fixed target, or to a target the rules allow; its
                         client /_wssh/wssh.js; /_wssh/check?path=PATH says whether a tunnel
                         on PATH would be allowed, and why not. Embedded, nothing fetched
                         from elsewhere; --origin pages may import the module
  --record FILE          record each tunnel's bytes, both ways and in the clear, to FILE.1,
                         FILE.2, ... (mode 0600, never overwritten) in websockify's format,
                         for noVNC's playback page; a debugging aid
  --record-max MIB       stop a recording before its file passes MIB mebibytes; the tunnel
                         goes on [default: 64]
  --wrap-mode MODE       when the PROGRAM after -- ends by itself: exit (stop, and exit
                         with its status), ignore (serve on), or respawn (start it again,
                         held while its last 3 starts average under 10 s ago: websockify's
                         throttle) [default: exit]
  --web-auth             with --web: pages need the credentials (and CN) of --auth-file,
                         --auth-basic and --client-cn too; without it pages are public and
                         only tunnels need them
  --run-once             exit after the first tunnel ends
  --timeout S            stop accepting S seconds after the start, then exit once the open
                         connections have finished (a signal still cuts them)
  --idle-timeout S       exit once no connection (tunnel, page or handshake) has been open
                         for S seconds, counted from the start or the last one's end
  --metrics ADDR         serve Prometheus metrics on GET /metrics at ADDR, a listener of
                         its own: PORT (on 127.0.0.1) or HOST:PORT (see the README)
  --probe                serve /_wssh/probe for wssh probe --bytes: data sent there is
                         counted and dropped, and asked-for bytes sent back; never a target,
                         but a tunnel in every limit [default: off]
  -v, -vv, -q            debug, trace, or errors only [default: info]
  -h, --help             this text

With -- PROGRAM ARGS, wssh starts PROGRAM once it listens (websockify's wrap mode), stdin from
/dev/null, in a process group of its own that ends with wssh, even when wssh is killed
(SIGTERM, then SIGKILL after 3 s). PROGRAM must listen where --target or --unix-target says;
with neither, wssh picks a free port on 127.0.0.1, makes it the target and passes it in:
{port} in ARGS is replaced, and WSSH_TARGET_PORT=PORT and WSSH_TARGET=127.0.0.1:PORT are set.
Example: wssh server --listen 0.0.0.0:6080 -- x11vnc -localhost -rfbport {port} -forever

SIGTERM or Ctrl-C: stop accepting, close tunnels (1001), exit within 2 s (5 s with a PROGRAM);
a second one exits now.
";

pub const CONNECT_HELP: &str = "\
wssh connect: a local HTTP proxy that answers CONNECT host:port with a tunnel

Usage: wssh connect [OPTIONS] URL

URL says where the requested host and port go: {host} and {port} are replaced
(wss://gw/ssh/{host}:{port}); a URL ending in /ssh/ gets host:port appended; any other URL
is used as it is for every request. 200 is answered once the tunnel is open; otherwise 502
(server unreachable), 403 (target refused by the server), 405 (not CONNECT), 400, 431.

Options:
  --listen ADDR          where to listen [default: 127.0.0.1:3122]
  --max-tunnels N        tunnels at once [default: 1000]
DIALER_OPTIONS
  -v, -vv, -q            debug, trace, or errors only [default: info]
  -h, --help             this text

ENVIRONMENT";

pub const FORWARD_HELP: &str = "\
wssh forward: a local port forward (like ssh -L): each connection gets its own tunnel

Usage: wssh forward --listen ADDR [OPTIONS] URL

Example: wssh forward --listen 127.0.0.1:2222 wss://gw.example.com/ssh/db1
         ssh -p 2222 me@127.0.0.1

Options:
  --listen ADDR          where to listen (required)
  --max-tunnels N        tunnels at once [default: 1000]
DIALER_OPTIONS
  -v, -vv, -q            debug, trace, or errors only [default: info]
  -h, --help             this text

ENVIRONMENT";

pub const PROBE_HELP: &str = "\
wssh probe: walk the path to a wssh server one step at a time and say which step fails

Usage: wssh probe [OPTIONS] URL

Steps: which proxy applies and why; DNS (IPv4 and IPv6); TCP to each address; the proxy's
answer to CONNECT; TLS (protocol, cipher, the certificate chain, why verification failed);
the upgrade (status, Server, Via, a redirect's Location, the start of another answer's
body); the target (the server's close when it cannot reach it, or the target's first bytes:
an SSH banner is named); ping round trips; with --idle, when the path cuts silence. It stops
at the first failure, with what to do. Passwords and -H values are never printed.
Exit codes: 0 every step passed (a warning passes), 1 a step failed, 2 a usage error.

Options:
  --json                 one JSON object per step, one per line (schema wssh-probe/1,
                         see the README)
  --idle S               then hold the tunnel silent for S seconds and say whether and when
                         something on the path cuts it, and what --ping keeps it alive; a
                         wssh server is asked (X-Wssh-Probe: quiet) not to ping meanwhile
  --bytes N              then send N bytes each way through a second tunnel, to a server
                         that allows it (wssh server --probe), and give the throughput
DIALER_OPTIONS
  -v, -vv, -q            debug, trace, or errors only [default: errors]
  -h, --help             this text

ENVIRONMENT";

pub const HASH_PASSWORD_HELP: &str = "\
wssh hash-password: a hashed line for wssh server --auth-file

Usage: wssh hash-password [--iterations N] USER

Reads the password from stdin (asked twice, not shown, on a terminal; else the first line)
and prints USER:pbkdf2-sha256$ITERATIONS$SALT$HASH (PBKDF2-HMAC-SHA256, a random 16-byte
salt, base64). Needs the OpenSSL build of wssh (Linux and other Unix but macOS); elsewhere,
give the password itself in the file.
Example: wssh hash-password alice >> /etc/wssh/users

Options:
  --iterations N         PBKDF2 iterations, 1000 to 10000000 [default: 600000]; each check
                         of the password costs the server CPU time in proportion (about
                         0.15 s at the default on the test machine)
  -h, --help             this text
";

const DIALER_OPTIONS: &str =
    "  --ca FILE              also trust this PEM CA certificate (repeatable)
  --cert FILE --key FILE present this client certificate (PEM chain, PKCS#8 PEM key) to a
                         wss:// server that asks for one
  --insecure             do not verify the server's certificate (dangerous: prints a warning)
  -H, --header 'N: v'    send an extra HTTP header (repeatable)
  --password-file FILE   the password for the URL's user (wss://me@gw/): the first line of
                         FILE; it never shows in ps, logs or error messages
  --proxy URL            reach the server through this HTTP proxy: http://[user:pass@]host:port
  --ping S               ping after S seconds without a frame from the server; give up on
                         it after 4 x S [default: 30; 0: never]
  --connect-timeout S    seconds to connect and finish the handshakes [default: 10]";

const ENVIRONMENT: &str = "\
Environment (--proxy wins over the first two; no_proxy applies to all):
  https_proxy, HTTPS_PROXY   HTTP proxy for wss:// URLs
  http_proxy                 HTTP proxy for ws:// URLs (HTTP_PROXY is ignored, as curl does)
  no_proxy, NO_PROXY         hosts that skip the proxy: names, .domains, addresses, *
  WSSH_PASSWORD              the password for the URL's user, unless --password-file is given
";

/// A help text with the shared option and environment blocks filled in.
pub fn fill(text: &str) -> String {
    text.replace("DIALER_OPTIONS", DIALER_OPTIONS)
        .replace("ENVIRONMENT", ENVIRONMENT)
}

pub const WEBSOCKIFY_HELP: &str = "\
wssh websockify: websockify 0.13's command line, for launchers that start websockify
(noVNC's utils/novnc_proxy, supervisord, systemd): name wssh `websockify` (a symlink), or
run `wssh websockify ...`. Each option becomes the `wssh server` option in brackets.

Usage:
  websockify [options] [source_addr:]source_port target_addr:target_port
  websockify [options] --token-plugin=CLASS [source_addr:]source_port
  websockify [options] --unix-target=FILE [source_addr:]source_port
  websockify [options] --unix-listen=FILE target_addr:target_port

source_addr defaults to 0.0.0.0 ([::] with -6). Options may come before or after the
ports; --opt=value and --opt value both work. Any web page may connect unless ExpectOrigin
lists origins, as in websockify (a warning says so when not listening on loopback).

Options:
  -v, --verbose          debug messages [-v]
  --web DIR              serve files from DIR on the same port, never a directory listing
                         (--file-only is accepted and changes nothing) [--web]
  --cert FILE            PEM certificate, and its key unless --key is given [--cert, --key]
                         [default: self.pem in the current directory, if there is one]
  --key FILE             the key (PKCS#8 PEM) when it is not in the certificate file
  --ssl-only             refuse plain ws:// [--tls-only]
  --ssl-version V        minimum TLS version: default, tlsv1_1 and tlsv1_2 all mean TLS 1.2
                         here; tlsv1_3 [--tls-min-version 1.3]
  --ssl-ciphers LIST     OpenSSL cipher list for TLS 1.2 [--tls-ciphers]
  --unix-target FILE     connect to this Unix socket, not to a target_addr [--unix-target]
  --token-plugin CLASS --token-source ARG
                         the target from a token (?token= in the URL): TokenFile FILE|DIR
                         [--tokens], ReadOnlyTokenFile FILE|DIR [--tokens-read-once],
                         TokenFileName DIR [--token-dir], UnixDomainSocketDirectory DIR
                         [--unix-token-dir]
  --target-config FILE   --token-plugin TokenFile --token-source FILE
  --host-token           the token is the Host header, not ?token= [--host-token]
  --auth-plugin ExpectOrigin --auth-source 'ORIGIN ...'
                         only web pages from these origins may connect [--origin]
  --heartbeat S          ping a client after S seconds without a frame from it; drop it
                         after 4 x S [--ping; default: 30, websockify's: never]
  -6, --prefer-ipv6      a bare port listens on [::], not 0.0.0.0
  --record FILE          record each session to FILE.1, FILE.2, ... [--record]
  --wrap-mode M -- PROGRAM ARGS
                         start PROGRAM and watch it: exit, ignore or respawn [--wrap-mode];
                         it must listen where --unix-target says, or on the free loopback
                         port wssh gives it as {port} and WSSH_TARGET_PORT (no LD_PRELOAD)
  --run-once             exit after the first session ends [--run-once]
  --timeout S            stop listening S s after the start; open sessions finish [--timeout]
  --idle-timeout S       exit after S s with no connection open [--idle-timeout]
  --inetd                fd 0 is a listening socket; no source_port then [--inetd]
  --unix-listen FILE     listen on a Unix socket; no source_port then [--unix-listen]
  --unix-listen-mode M   its permissions, octal [--unix-listen-mode; default: 0600]
  -D, --daemon           detach once listening; a bind error is still the exit status [-D]
  --log-file FILE        the log to FILE once listening; SIGHUP reopens it [--log-file]
  --syslog SERVER        the log to syslog too: /dev/log or UDP HOST:PORT [--syslog]
  --legacy-syslog        RFC 3164 style lines, not RFC 5424 [--legacy-syslog]
  --auth-plugin BasicHTTPAuth --auth-source USER:PASS
                         Basic auth for tunnels [--auth-basic; --auth-file keeps it out of ps]
  --auth-plugin ClientCertCNAuth --auth-source 'CN ...'
                         only client certificates with these CNs [--client-cn]
  --verify-client --cafile FILE
                         TLS clients need a certificate from these CAs (--cafile is
                         required: no system CAs) [--verify-client --cafile]
  --web-auth             pages need the credentials too [--web-auth]
  -h, --help             this text

Refused: --traffic (writes to stdout), --libserver (turns plugins off), --ssl-target,
--key-password (visible in ps), and token plugins that are Python classes or ask a network
service (BaseTokenAPI, JSONTokenApi, JWTTokenApi, TokenRedis, dotted names).

Unlike websockify: a port in use is an error (exit 1, `Address already in use`), not exit 0;
a missing --cert file is an error, not a server without TLS.
";
