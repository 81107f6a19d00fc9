
use builtin;
use str;

set edit:completion:arg-completer[camstream] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'camstream'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'camstream'= {
            cand --log-level 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream''s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List cameras with their formats, sizes and frame rates'
            cand snapshot 'Write one JPEG from the source to a file (or "-" for stdout)'
            cand serve 'Serve the source as a live MJPEG stream, snapshots, health and Prometheus metrics'
            cand controls 'Show a camera''s controls (focus, exposure, white balance, ...), or set them and show what the camera accepted'
            cand hash-password 'Hash a password (read from stdin) for a line `user:HASH` of an --auth-file'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'camstream;list'= {
            cand --log-level 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream''s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities'
            cand --json 'Print a JSON array instead of text'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'camstream;snapshot'= {
            cand --source 'Frame source: camera (the first capture camera), camera:N, camera:/dev/videoN or a /dev/v4l/by-id/... path, pattern (a synthetic moving test pattern), file:PATH (an MJPEG file of at most 512 MiB or a folder of .jpg files, looped; frames over 32 MiB and folder entries that are not regular files are skipped and counted), or http://URL (relay another MJPEG server or a camera''s stream or snapshot URL; its user and password come from the URL or from CAMSTREAM_SOURCE_USER and CAMSTREAM_SOURCE_PASSWORD)'
            cand --size 'Frame size WIDTHxHEIGHT (even numbers, 16..=7680 by 16..=4320). A camera that does not offer it streams the nearest size it has (with a warning); file sources keep the size of their own frames'
            cand --fps 'Frames per second to capture (1..=120)'
            cand --quality 'JPEG quality for frames that camstream encodes (1..=100)'
            cand --format 'Camera pixel format: auto prefers MJPEG so frames pass through without re-encoding'
            cand --timeout 'How long opening the source (a big file too) or waiting for a frame may take before the source counts as failed (e.g. 5s, 500ms)'
            cand --control 'Set a camera control when the camera opens and again after every reconnect, e.g. --control focus_automatic_continuous=0 --control focus_absolute=40 (applied in order; names as `camstream controls` shows them, menu values by number or name). Repeatable, and each takes a comma-separated list too, as does CAMSTREAM_CONTROLS (used when no --control is given). An unknown name or a value out of range is a usage error when the camera is present at start, else a warning when it opens; a control the camera refuses is a warning and the stream goes on'
            cand --skip 'Camera warm-up frames to discard first, so that exposure has settled'
            cand --log-level 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream''s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'camstream;serve'= {
            cand --source 'Frame source: camera (the first capture camera), camera:N, camera:/dev/videoN or a /dev/v4l/by-id/... path, pattern (a synthetic moving test pattern), file:PATH (an MJPEG file of at most 512 MiB or a folder of .jpg files, looped; frames over 32 MiB and folder entries that are not regular files are skipped and counted), or http://URL (relay another MJPEG server or a camera''s stream or snapshot URL; its user and password come from the URL or from CAMSTREAM_SOURCE_USER and CAMSTREAM_SOURCE_PASSWORD)'
            cand --size 'Frame size WIDTHxHEIGHT (even numbers, 16..=7680 by 16..=4320). A camera that does not offer it streams the nearest size it has (with a warning); file sources keep the size of their own frames'
            cand --fps 'Frames per second to capture (1..=120)'
            cand --quality 'JPEG quality for frames that camstream encodes (1..=100)'
            cand --format 'Camera pixel format: auto prefers MJPEG so frames pass through without re-encoding'
            cand --timeout 'How long opening the source (a big file too) or waiting for a frame may take before the source counts as failed (e.g. 5s, 500ms)'
            cand --control 'Set a camera control when the camera opens and again after every reconnect, e.g. --control focus_automatic_continuous=0 --control focus_absolute=40 (applied in order; names as `camstream controls` shows them, menu values by number or name). Repeatable, and each takes a comma-separated list too, as does CAMSTREAM_CONTROLS (used when no --control is given). An unknown name or a value out of range is a usage error when the camera is present at start, else a warning when it opens; a control the camera refuses is a warning and the stream goes on'
            cand --listen 'Address to listen on; port 0 picks a free port (the bound address is printed)'
            cand --max-clients 'Most concurrent stream viewers; the next one gets 503 with Retry-After at once'
            cand --max-connections 'Most open connections of any kind (viewers, requests being read or answered, idle sockets); at least --max-clients. At the cap, a connection still sending its request head is closed to make room (see --max-pending-per-ip); only when none is left is a newcomer answered 503. Default: what the open-file limit allows (its hard limit minus 128), at most 16384 and at least max-clients + 64'
            cand --max-pending-per-ip 'Share of the connections still sending their request head that one IP address (for IPv6, one /64) keeps when room must be made: at the connection cap, the address with the most such connections, if more than this, loses its oldest first; otherwise the oldest of all goes'
            cand --workers 'Threads answering short requests (/snapshot, /metrics, /state, /healthz, /)'
            cand --send-timeout 'A viewer that accepts no data for this long is disconnected and its slot freed'
            cand --header-timeout 'Time a client has to send its request line and headers'
            cand --allow-origin 'Send Access-Control-Allow-Origin with this value and answer CORS preflights: an origin (scheme://host or scheme://host:port, as a browser sends it in Origin) or *'
            cand --max-clients-per-ip 'Most concurrent stream viewers from one IP address (default: no per-address limit)'
            cand --auth-file 'Require HTTP Basic authentication: a file of `user:HASH` lines (see hash-password; argon2 costs up to m=64 MiB, t=8, p=16). SIGHUP reloads it. CAMSTREAM_AUTH=user:password adds a user from the environment'
            cand --auth-exempt 'Endpoints reachable without authentication (comma-separated: healthz, metrics, state, snapshot, stream, index), so probes and scrapers need no password. "none" for none'
            cand --log-level 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream''s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'camstream;controls'= {
            cand --source 'The camera: camera (the first capture camera), camera:N, camera:/dev/videoN or a /dev/v4l/by-id/... path'
            cand --log-level 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream''s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities'
            cand --json 'Print JSON instead of text'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'camstream;hash-password'= {
            cand --log-level 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream''s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'camstream;help'= {
            cand list 'List cameras with their formats, sizes and frame rates'
            cand snapshot 'Write one JPEG from the source to a file (or "-" for stdout)'
            cand serve 'Serve the source as a live MJPEG stream, snapshots, health and Prometheus metrics'
            cand controls 'Show a camera''s controls (focus, exposure, white balance, ...), or set them and show what the camera accepted'
            cand hash-password 'Hash a password (read from stdin) for a line `user:HASH` of an --auth-file'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'camstream;help;list'= {
        }
        &'camstream;help;snapshot'= {
        }
        &'camstream;help;serve'= {
        }
        &'camstream;help;controls'= {
        }
        &'camstream;help;hash-password'= {
        }
        &'camstream;help;help'= {
        }
    ]
    $completions[$command]
}
