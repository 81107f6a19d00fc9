
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'camstream' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'camstream'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'camstream' {
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream''s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List cameras with their formats, sizes and frame rates')
            [CompletionResult]::new('snapshot', 'snapshot', [CompletionResultType]::ParameterValue, 'Write one JPEG from the source to a file (or "-" for stdout)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the source as a live MJPEG stream, snapshots, health and Prometheus metrics')
            [CompletionResult]::new('controls', 'controls', [CompletionResultType]::ParameterValue, 'Show a camera''s controls (focus, exposure, white balance, ...), or set them and show what the camera accepted')
            [CompletionResult]::new('hash-password', 'hash-password', [CompletionResultType]::ParameterValue, 'Hash a password (read from stdin) for a line `user:HASH` of an --auth-file')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'camstream;list' {
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream''s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON array instead of text')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'camstream;snapshot' {
            [CompletionResult]::new('--source', '--source', [CompletionResultType]::ParameterName, 'Frame source: camera (the first capture camera), camera:N, camera:/dev/videoN or a /dev/v4l/by-id/... path, pattern (a synthetic moving test pattern), file:PATH (an MJPEG file of at most 512 MiB or a folder of .jpg files, looped; frames over 32 MiB and folder entries that are not regular files are skipped and counted), or http://URL (relay another MJPEG server or a camera''s stream or snapshot URL; its user and password come from the URL or from CAMSTREAM_SOURCE_USER and CAMSTREAM_SOURCE_PASSWORD)')
            [CompletionResult]::new('--size', '--size', [CompletionResultType]::ParameterName, 'Frame size WIDTHxHEIGHT (even numbers, 16..=7680 by 16..=4320). A camera that does not offer it streams the nearest size it has (with a warning); file sources keep the size of their own frames')
            [CompletionResult]::new('--fps', '--fps', [CompletionResultType]::ParameterName, 'Frames per second to capture (1..=120)')
            [CompletionResult]::new('--quality', '--quality', [CompletionResultType]::ParameterName, 'JPEG quality for frames that camstream encodes (1..=100)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Camera pixel format: auto prefers MJPEG so frames pass through without re-encoding')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long opening the source (a big file too) or waiting for a frame may take before the source counts as failed (e.g. 5s, 500ms)')
            [CompletionResult]::new('--control', '--control', [CompletionResultType]::ParameterName, 'Set a camera control when the camera opens and again after every reconnect, e.g. --control focus_automatic_continuous=0 --control focus_absolute=40 (applied in order; names as `camstream controls` shows them, menu values by number or name). Repeatable, and each takes a comma-separated list too, as does CAMSTREAM_CONTROLS (used when no --control is given). An unknown name or a value out of range is a usage error when the camera is present at start, else a warning when it opens; a control the camera refuses is a warning and the stream goes on')
            [CompletionResult]::new('--skip', '--skip', [CompletionResultType]::ParameterName, 'Camera warm-up frames to discard first, so that exposure has settled')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream''s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'camstream;serve' {
            [CompletionResult]::new('--source', '--source', [CompletionResultType]::ParameterName, 'Frame source: camera (the first capture camera), camera:N, camera:/dev/videoN or a /dev/v4l/by-id/... path, pattern (a synthetic moving test pattern), file:PATH (an MJPEG file of at most 512 MiB or a folder of .jpg files, looped; frames over 32 MiB and folder entries that are not regular files are skipped and counted), or http://URL (relay another MJPEG server or a camera''s stream or snapshot URL; its user and password come from the URL or from CAMSTREAM_SOURCE_USER and CAMSTREAM_SOURCE_PASSWORD)')
            [CompletionResult]::new('--size', '--size', [CompletionResultType]::ParameterName, 'Frame size WIDTHxHEIGHT (even numbers, 16..=7680 by 16..=4320). A camera that does not offer it streams the nearest size it has (with a warning); file sources keep the size of their own frames')
            [CompletionResult]::new('--fps', '--fps', [CompletionResultType]::ParameterName, 'Frames per second to capture (1..=120)')
            [CompletionResult]::new('--quality', '--quality', [CompletionResultType]::ParameterName, 'JPEG quality for frames that camstream encodes (1..=100)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Camera pixel format: auto prefers MJPEG so frames pass through without re-encoding')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long opening the source (a big file too) or waiting for a frame may take before the source counts as failed (e.g. 5s, 500ms)')
            [CompletionResult]::new('--control', '--control', [CompletionResultType]::ParameterName, 'Set a camera control when the camera opens and again after every reconnect, e.g. --control focus_automatic_continuous=0 --control focus_absolute=40 (applied in order; names as `camstream controls` shows them, menu values by number or name). Repeatable, and each takes a comma-separated list too, as does CAMSTREAM_CONTROLS (used when no --control is given). An unknown name or a value out of range is a usage error when the camera is present at start, else a warning when it opens; a control the camera refuses is a warning and the stream goes on')
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to listen on; port 0 picks a free port (the bound address is printed)')
            [CompletionResult]::new('--max-clients', '--max-clients', [CompletionResultType]::ParameterName, 'Most concurrent stream viewers; the next one gets 503 with Retry-After at once')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Most open connections of any kind (viewers, requests being read or answered, idle sockets); at least --max-clients. At the cap, a connection still sending its request head is closed to make room (see --max-pending-per-ip); only when none is left is a newcomer answered 503. Default: what the open-file limit allows (its hard limit minus 128), at most 16384 and at least max-clients + 64')
            [CompletionResult]::new('--max-pending-per-ip', '--max-pending-per-ip', [CompletionResultType]::ParameterName, 'Share of the connections still sending their request head that one IP address (for IPv6, one /64) keeps when room must be made: at the connection cap, the address with the most such connections, if more than this, loses its oldest first; otherwise the oldest of all goes')
            [CompletionResult]::new('--workers', '--workers', [CompletionResultType]::ParameterName, 'Threads answering short requests (/snapshot, /metrics, /state, /healthz, /)')
            [CompletionResult]::new('--send-timeout', '--send-timeout', [CompletionResultType]::ParameterName, 'A viewer that accepts no data for this long is disconnected and its slot freed')
            [CompletionResult]::new('--header-timeout', '--header-timeout', [CompletionResultType]::ParameterName, 'Time a client has to send its request line and headers')
            [CompletionResult]::new('--allow-origin', '--allow-origin', [CompletionResultType]::ParameterName, 'Send Access-Control-Allow-Origin with this value and answer CORS preflights: an origin (scheme://host or scheme://host:port, as a browser sends it in Origin) or *')
            [CompletionResult]::new('--max-clients-per-ip', '--max-clients-per-ip', [CompletionResultType]::ParameterName, 'Most concurrent stream viewers from one IP address (default: no per-address limit)')
            [CompletionResult]::new('--auth-file', '--auth-file', [CompletionResultType]::ParameterName, 'Require HTTP Basic authentication: a file of `user:HASH` lines (see hash-password; argon2 costs up to m=64 MiB, t=8, p=16). SIGHUP reloads it. CAMSTREAM_AUTH=user:password adds a user from the environment')
            [CompletionResult]::new('--auth-exempt', '--auth-exempt', [CompletionResultType]::ParameterName, 'Endpoints reachable without authentication (comma-separated: healthz, metrics, state, snapshot, stream, index), so probes and scrapers need no password. "none" for none')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream''s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'camstream;controls' {
            [CompletionResult]::new('--source', '--source', [CompletionResultType]::ParameterName, 'The camera: camera (the first capture camera), camera:N, camera:/dev/videoN or a /dev/v4l/by-id/... path')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream''s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'camstream;hash-password' {
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'How much to log on stderr: off, error, warn (the default: warnings and errors), info (also events such as a viewer evicted), debug (also every connection, by address) or trace. It sets camstream''s own level; other libraries log only their warnings and errors. Without it, RUST_LOG is honoured (e.g. RUST_LOG=camstream::server=debug). Under systemd (JOURNAL_STREAM names stderr), lines carry journald priorities')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'camstream;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List cameras with their formats, sizes and frame rates')
            [CompletionResult]::new('snapshot', 'snapshot', [CompletionResultType]::ParameterValue, 'Write one JPEG from the source to a file (or "-" for stdout)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the source as a live MJPEG stream, snapshots, health and Prometheus metrics')
            [CompletionResult]::new('controls', 'controls', [CompletionResultType]::ParameterValue, 'Show a camera''s controls (focus, exposure, white balance, ...), or set them and show what the camera accepted')
            [CompletionResult]::new('hash-password', 'hash-password', [CompletionResultType]::ParameterValue, 'Hash a password (read from stdin) for a line `user:HASH` of an --auth-file')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'camstream;help;list' {
            break
        }
        'camstream;help;snapshot' {
            break
        }
        'camstream;help;serve' {
            break
        }
        'camstream;help;controls' {
            break
        }
        'camstream;help;hash-password' {
            break
        }
        'camstream;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
