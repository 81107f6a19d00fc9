# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_camstream_global_optspecs
    string join \n log-level= h/help V/version
end

function __fish_camstream_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_camstream_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_camstream_using_subcommand
    set -l cmd (__fish_camstream_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c camstream -n "__fish_camstream_needs_command" -l log-level -d 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream\'s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities' -r -f -a "off\t'Nothing (a command\'s final error is still printed)'
error\t'Errors only'
warn\t'Warnings and errors (the default)'
info\t'Also events: sources opened and lost, viewers refused and evicted'
debug\t'Also every connection and viewer admitted, by address'
trace\t'Everything'"
complete -c camstream -n "__fish_camstream_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c camstream -n "__fish_camstream_needs_command" -s V -l version -d 'Print version'
complete -c camstream -n "__fish_camstream_needs_command" -f -a "list" -d 'List cameras with their formats, sizes and frame rates'
complete -c camstream -n "__fish_camstream_needs_command" -f -a "snapshot" -d 'Write one JPEG from the source to a file (or "-" for stdout)'
complete -c camstream -n "__fish_camstream_needs_command" -f -a "serve" -d 'Serve the source as a live MJPEG stream, snapshots, health and Prometheus metrics'
complete -c camstream -n "__fish_camstream_needs_command" -f -a "controls" -d 'Show a camera\'s controls (focus, exposure, white balance, ...), or set them and show what the camera accepted'
complete -c camstream -n "__fish_camstream_needs_command" -f -a "hash-password" -d 'Hash a password (read from stdin) for a line `user:HASH` of an --auth-file'
complete -c camstream -n "__fish_camstream_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c camstream -n "__fish_camstream_using_subcommand list" -l log-level -d 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream\'s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities' -r -f -a "off\t'Nothing (a command\'s final error is still printed)'
error\t'Errors only'
warn\t'Warnings and errors (the default)'
info\t'Also events: sources opened and lost, viewers refused and evicted'
debug\t'Also every connection and viewer admitted, by address'
trace\t'Everything'"
complete -c camstream -n "__fish_camstream_using_subcommand list" -l json -d 'Print a JSON array instead of text'
complete -c camstream -n "__fish_camstream_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c camstream -n "__fish_camstream_using_subcommand list" -s V -l version -d 'Print version'
complete -c camstream -n "__fish_camstream_using_subcommand snapshot" -l source -d 'Frame source: camera (the first capture camera), camera:N, camera:/dev/videoN or a /dev/v4l/by-id/... path, pattern (a synthetic moving test pattern), file:PATH (an MJPEG file of at most 512 MiB or a folder of .jpg files, looped; frames over 32 MiB and folder entries that are not regular files are skipped and counted), or http://URL (relay another MJPEG server or a camera\'s stream or snapshot URL; its user and password come from the URL or from CAMSTREAM_SOURCE_USER and CAMSTREAM_SOURCE_PASSWORD)' -r
complete -c camstream -n "__fish_camstream_using_subcommand snapshot" -l size -d 'Frame size WIDTHxHEIGHT (even numbers, 16..=7680 by 16..=4320). A camera that does not offer it streams the nearest size it has (with a warning); file sources keep the size of their own frames' -r
complete -c camstream -n "__fish_camstream_using_subcommand snapshot" -l fps -d 'Frames per second to capture (1..=120)' -r
complete -c camstream -n "__fish_camstream_using_subcommand snapshot" -l quality -d 'JPEG quality for frames that camstream encodes (1..=100)' -r
complete -c camstream -n "__fish_camstream_using_subcommand snapshot" -l format -d 'Camera pixel format: auto prefers MJPEG so frames pass through without re-encoding' -r -f -a "auto\t'MJPEG when the camera offers it at the size (passed through), else YUYV'
mjpeg\t'Compressed frames from the camera, passed through untouched'
yuyv\t'Raw YUYV 4:2:2 frames, encoded by camstream'"
complete -c camstream -n "__fish_camstream_using_subcommand snapshot" -l timeout -d 'How long opening the source (a big file too) or waiting for a frame may take before the source counts as failed (e.g. 5s, 500ms)' -r
complete -c camstream -n "__fish_camstream_using_subcommand snapshot" -l control -d 'Set a camera control when the camera opens and again after every reconnect, e.g. --control focus_automatic_continuous=0 --control focus_absolute=40 (applied in order; names as `camstream controls` shows them, menu values by number or name). Repeatable, and each takes a comma-separated list too, as does CAMSTREAM_CONTROLS (used when no --control is given). An unknown name or a value out of range is a usage error when the camera is present at start, else a warning when it opens; a control the camera refuses is a warning and the stream goes on' -r
complete -c camstream -n "__fish_camstream_using_subcommand snapshot" -l skip -d 'Camera warm-up frames to discard first, so that exposure has settled' -r
complete -c camstream -n "__fish_camstream_using_subcommand snapshot" -l log-level -d 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream\'s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities' -r -f -a "off\t'Nothing (a command\'s final error is still printed)'
error\t'Errors only'
warn\t'Warnings and errors (the default)'
info\t'Also events: sources opened and lost, viewers refused and evicted'
debug\t'Also every connection and viewer admitted, by address'
trace\t'Everything'"
complete -c camstream -n "__fish_camstream_using_subcommand snapshot" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c camstream -n "__fish_camstream_using_subcommand snapshot" -s V -l version -d 'Print version'
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l source -d 'Frame source: camera (the first capture camera), camera:N, camera:/dev/videoN or a /dev/v4l/by-id/... path, pattern (a synthetic moving test pattern), file:PATH (an MJPEG file of at most 512 MiB or a folder of .jpg files, looped; frames over 32 MiB and folder entries that are not regular files are skipped and counted), or http://URL (relay another MJPEG server or a camera\'s stream or snapshot URL; its user and password come from the URL or from CAMSTREAM_SOURCE_USER and CAMSTREAM_SOURCE_PASSWORD)' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l size -d 'Frame size WIDTHxHEIGHT (even numbers, 16..=7680 by 16..=4320). A camera that does not offer it streams the nearest size it has (with a warning); file sources keep the size of their own frames' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l fps -d 'Frames per second to capture (1..=120)' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l quality -d 'JPEG quality for frames that camstream encodes (1..=100)' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l format -d 'Camera pixel format: auto prefers MJPEG so frames pass through without re-encoding' -r -f -a "auto\t'MJPEG when the camera offers it at the size (passed through), else YUYV'
mjpeg\t'Compressed frames from the camera, passed through untouched'
yuyv\t'Raw YUYV 4:2:2 frames, encoded by camstream'"
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l timeout -d 'How long opening the source (a big file too) or waiting for a frame may take before the source counts as failed (e.g. 5s, 500ms)' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l control -d 'Set a camera control when the camera opens and again after every reconnect, e.g. --control focus_automatic_continuous=0 --control focus_absolute=40 (applied in order; names as `camstream controls` shows them, menu values by number or name). Repeatable, and each takes a comma-separated list too, as does CAMSTREAM_CONTROLS (used when no --control is given). An unknown name or a value out of range is a usage error when the camera is present at start, else a warning when it opens; a control the camera refuses is a warning and the stream goes on' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l listen -d 'Address to listen on; port 0 picks a free port (the bound address is printed)' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l max-clients -d 'Most concurrent stream viewers; the next one gets 503 with Retry-After at once' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l max-connections -d 'Most open connections of any kind (viewers, requests being read or answered, idle sockets); at least --max-clients. At the cap, a connection still sending its request head is closed to make room (see --max-pending-per-ip); only when none is left is a newcomer answered 503. Default: what the open-file limit allows (its hard limit minus 128), at most 16384 and at least max-clients + 64' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l max-pending-per-ip -d 'Share of the connections still sending their request head that one IP address (for IPv6, one /64) keeps when room must be made: at the connection cap, the address with the most such connections, if more than this, loses its oldest first; otherwise the oldest of all goes' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l workers -d 'Threads answering short requests (/snapshot, /metrics, /state, /healthz, /)' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l send-timeout -d 'A viewer that accepts no data for this long is disconnected and its slot freed' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l header-timeout -d 'Time a client has to send its request line and headers' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l allow-origin -d 'Send Access-Control-Allow-Origin with this value and answer CORS preflights: an origin (scheme://host or scheme://host:port, as a browser sends it in Origin) or *' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l max-clients-per-ip -d 'Most concurrent stream viewers from one IP address (default: no per-address limit)' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l auth-file -d 'Require HTTP Basic authentication: a file of `user:HASH` lines (see hash-password; argon2 costs up to m=64 MiB, t=8, p=16). SIGHUP reloads it. CAMSTREAM_AUTH=user:password adds a user from the environment' -r -F
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l auth-exempt -d 'Endpoints reachable without authentication (comma-separated: healthz, metrics, state, snapshot, stream, index), so probes and scrapers need no password. "none" for none' -r
complete -c camstream -n "__fish_camstream_using_subcommand serve" -l log-level -d 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream\'s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities' -r -f -a "off\t'Nothing (a command\'s final error is still printed)'
error\t'Errors only'
warn\t'Warnings and errors (the default)'
info\t'Also events: sources opened and lost, viewers refused and evicted'
debug\t'Also every connection and viewer admitted, by address'
trace\t'Everything'"
complete -c camstream -n "__fish_camstream_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c camstream -n "__fish_camstream_using_subcommand serve" -s V -l version -d 'Print version'
complete -c camstream -n "__fish_camstream_using_subcommand controls" -l source -d 'The camera: camera (the first capture camera), camera:N, camera:/dev/videoN or a /dev/v4l/by-id/... path' -r
complete -c camstream -n "__fish_camstream_using_subcommand controls" -l log-level -d 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream\'s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities' -r -f -a "off\t'Nothing (a command\'s final error is still printed)'
error\t'Errors only'
warn\t'Warnings and errors (the default)'
info\t'Also events: sources opened and lost, viewers refused and evicted'
debug\t'Also every connection and viewer admitted, by address'
trace\t'Everything'"
complete -c camstream -n "__fish_camstream_using_subcommand controls" -l json -d 'Print JSON instead of text'
complete -c camstream -n "__fish_camstream_using_subcommand controls" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c camstream -n "__fish_camstream_using_subcommand controls" -s V -l version -d 'Print version'
complete -c camstream -n "__fish_camstream_using_subcommand hash-password" -l log-level -d 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream\'s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities' -r -f -a "off\t'Nothing (a command\'s final error is still printed)'
error\t'Errors only'
warn\t'Warnings and errors (the default)'
info\t'Also events: sources opened and lost, viewers refused and evicted'
debug\t'Also every connection and viewer admitted, by address'
trace\t'Everything'"
complete -c camstream -n "__fish_camstream_using_subcommand hash-password" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c camstream -n "__fish_camstream_using_subcommand hash-password" -s V -l version -d 'Print version'
complete -c camstream -n "__fish_camstream_using_subcommand help; and not __fish_seen_subcommand_from list snapshot serve controls hash-password help" -f -a "list" -d 'List cameras with their formats, sizes and frame rates'
complete -c camstream -n "__fish_camstream_using_subcommand help; and not __fish_seen_subcommand_from list snapshot serve controls hash-password help" -f -a "snapshot" -d 'Write one JPEG from the source to a file (or "-" for stdout)'
complete -c camstream -n "__fish_camstream_using_subcommand help; and not __fish_seen_subcommand_from list snapshot serve controls hash-password help" -f -a "serve" -d 'Serve the source as a live MJPEG stream, snapshots, health and Prometheus metrics'
complete -c camstream -n "__fish_camstream_using_subcommand help; and not __fish_seen_subcommand_from list snapshot serve controls hash-password help" -f -a "controls" -d 'Show a camera\'s controls (focus, exposure, white balance, ...), or set them and show what the camera accepted'
complete -c camstream -n "__fish_camstream_using_subcommand help; and not __fish_seen_subcommand_from list snapshot serve controls hash-password help" -f -a "hash-password" -d 'Hash a password (read from stdin) for a line `user:HASH` of an --auth-file'
complete -c camstream -n "__fish_camstream_using_subcommand help; and not __fish_seen_subcommand_from list snapshot serve controls hash-password help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
