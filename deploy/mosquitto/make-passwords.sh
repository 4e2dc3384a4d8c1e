#!/bin/sh
# Write the broker's password file from the env file: one user per service role (the rights
# are in deploy/mosquitto/acl), plus one per device from the devices file; and the login of
# the broker's health check (user `monitor`) as a mosquitto_sub options file, so that its
# password is in no environment variable and on no command line. Nothing written here belongs
# in the repository (.gitignore has all four files).
#
#   deploy/mosquitto/make-passwords.sh [-e ENV_FILE] [-d DEVICES_FILE] [-o PASSWORD_FILE]
#                                      [-m MONITOR_FILE] [-u BROKER_UID] [-x EMQX_USERS_FILE]
#
# Defaults: .env, deploy/mosquitto/devices, deploy/mosquitto/passwords and
# deploy/mosquitto/monitor-login in the repository, uid 1883 (the broker's user in the
# eclipse-mosquitto image, which reads the password file only after dropping root).
#
# Both files are readable by their owner only (0600): the password file owned by BROKER_UID.
# As root the script gives it to that uid; otherwise through docker (root in a throw-away
# container); without either only if BROKER_UID is your own uid (a broker running as you).
# It never writes a password file others may read.
# -x also writes the same users for the clustered broker (deploy/emqx, docker-compose.emqx.yml)
# as EMQX's bootstrap file: user_id,password,is_superuser, in plain text (EMQX hashes them when
# it imports them), 0600 and given to BROKER_UID like the password file (EMQX's image: -u 1000).
# The devices file (optional) has one "USERNAME PASSWORD" line per device; the username is the
# topic level the device owns: bay id, lot id (garage counter), app@tenant (TTN bridge),
# ChirpStack application id or sign id. Lines starting with # are comments. One file for every
# city of the installation: the ids are unique across the cities.
#
# Needs mosquitto_passwd (Debian: package mosquitto), else docker.
# Passwords never appear on a command line: mosquitto_passwd -U hashes a private copy in place.
# Run it again after every change, then `docker compose kill -s HUP mosquitto` to reload.
# Exit codes: 0 written, 2 bad input (one line on stderr), 1 anything else.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
env_file="$root/.env"
devices_file="$here/devices"
output="$here/passwords"
monitor_file="$here/monitor-login"
broker_uid=1883
emqx_output=
mosquitto_image="eclipse-mosquitto:2.0.22"

while getopts e:d:o:m:u:x: option; do
    case "$option" in
        e) env_file=$OPTARG ;;
        d) devices_file=$OPTARG ;;
        o) output=$OPTARG ;;
        m) monitor_file=$OPTARG ;;
        u) broker_uid=$OPTARG ;;
        x) emqx_output=$OPTARG ;;
        *) echo "usage: $0 [-e ENV_FILE] [-d DEVICES_FILE] [-o PASSWORD_FILE]" \
                "[-m MONITOR_FILE] [-u BROKER_UID] [-x EMQX_USERS_FILE]" >&2
           exit 2 ;;
    esac
done

fail() { echo "make-passwords: $*" >&2; exit 2; }

[ -f "$env_file" ] || fail "no env file $env_file (cp .env.example .env, then fill it in)"
case "$broker_uid" in ''|*[!0-9]*) fail "-u wants a numeric uid, not '$broker_uid'" ;; esac
# How the file will become the broker's, decided before anything is written.
if [ "$(id -u)" = 0 ]; then
    give=chown
elif [ "$(id -u)" = "$broker_uid" ]; then
    give=none
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    give=docker
else
    fail "cannot give the password file to the broker's uid $broker_uid as uid $(id -u): run" \
         "as root (sudo), with docker, or with -u $(id -u) for a broker running as you"
fi

# The last KEY=VALUE line of the env file, without surrounding quotes.
value_of() {
    sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*//p" "$env_file" | tail -n 1 |
        sed -e 's/[[:space:]]*$//' -e "s/^\"\(.*\)\"\$/\1/" -e "s/^'\(.*\)'\$/\1/"
}

# Every password of the env file (the database's too) must be real: no placeholder, long
# enough, and safe to put into a URL unescaped.
check_password() {
    case "$2" in
        *change-me*|*changeme*|*CHANGE-ME*) fail "$1 is still a placeholder in $env_file" ;;
    esac
    if ! printf '%s' "$2" | grep -Eq '^[A-Za-z0-9._~-]{16,}$'; then
        fail "$1 in $env_file: use at least 16 characters from A-Z a-z 0-9 . _ ~ -"
    fi
}
for name in $(sed -n 's/^[[:space:]]*\([A-Z0-9_]*_PASSWORD\)[[:space:]]*=.*/\1/p' "$env_file" | sort -u); do
    value=$(value_of "$name")
    [ -z "$value" ] || check_password "$name" "$value"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 077
plain="$work/passwords"
: > "$plain"

# Service users: required ones, then optional ones (an empty password: no such user).
for entry in ingest:MQTT_INGEST_PASSWORD signage:MQTT_SIGNAGE_PASSWORD \
             forecast:MQTT_FORECAST_PASSWORD monitor:MQTT_MONITOR_PASSWORD \
             ocpp:MQTT_OCPP_PASSWORD ocpi:MQTT_OCPI_PASSWORD? \
             public:MQTT_PUBLIC_PASSWORD? api:MQTT_API_PASSWORD? \
             simulator:MQTT_SIMULATOR_PASSWORD?; do
    user=${entry%%:*}
    variable=${entry#*:}
    optional=no
    case "$variable" in *\?) optional=yes; variable=${variable%\?} ;; esac
    password=$(value_of "$variable")
    if [ -z "$password" ]; then
        [ "$optional" = yes ] && continue
        fail "$variable is not set in $env_file"
    fi
    printf '%s:%s\n' "$user" "$password" >> "$plain"
done

reserved=" ingest signage forecast ocpp ocpi api public monitor simulator "
devices=0
if [ -f "$devices_file" ]; then
    line_number=0
    while IFS= read -r line || [ -n "$line" ]; do
        line_number=$((line_number + 1))
        case "$line" in ''|\#*) continue ;; esac
        set -f
        # shellcheck disable=SC2086  # split the line into its two fields
        set -- $line
        set +f
        [ $# -eq 2 ] || fail "$devices_file:$line_number: want USERNAME PASSWORD"
        user=$1
        password=$2
        # %u goes into ACL topic patterns: no topic separators or wildcards; ':' ends the
        # username in the password file.
        if ! printf '%s' "$user" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9@._-]{0,127}$'; then
            fail "$devices_file:$line_number: username '$user' may hold A-Z a-z 0-9 @ . _ - only"
        fi
        case "$reserved" in *" $user "*)
            fail "$devices_file:$line_number: '$user' is a service user, not a device" ;;
        esac
        if grep -q "^$user:" "$plain"; then
            fail "$devices_file:$line_number: '$user' appears twice"
        fi
        case "$password" in *change-me*|*changeme*)
            fail "$devices_file:$line_number: the password of '$user' is a placeholder" ;;
        esac
        [ ${#password} -ge 12 ] || fail "$devices_file:$line_number: the password of '$user' is shorter than 12"
        printf '%s:%s\n' "$user" "$password" >> "$plain"
        devices=$((devices + 1))
    done < "$devices_file"
fi

if [ -n "$emqx_output" ]; then
    if grep -q '[,"]' "$plain"; then
        fail "a password holds , or \" which EMQX's users file (CSV) cannot carry"
    fi
    { echo "user_id,password,is_superuser"; sed 's/^\([^:]*\):\(.*\)$/\1,\2,false/' "$plain"; } \
        > "$work/emqx-users"
    chmod 600 "$work/emqx-users"
    case "$give" in
        chown) chown "$broker_uid:$broker_uid" "$work/emqx-users" ;;
        docker) docker run --rm -v "$work:/work" "$mosquitto_image" \
                    chown "$broker_uid:$broker_uid" /work/emqx-users ;;
    esac
    mv "$work/emqx-users" "$emqx_output.tmp"
    mv "$emqx_output.tmp" "$emqx_output"
fi

if command -v mosquitto_passwd >/dev/null 2>&1; then
    mosquitto_passwd -U "$plain"
elif command -v docker >/dev/null 2>&1; then
    docker run --rm --user "$(id -u):$(id -g)" -v "$work:/work" "$mosquitto_image" \
        mosquitto_passwd -U /work/passwords
else
    echo "make-passwords: needs mosquitto_passwd (apt install mosquitto) or docker" >&2
    exit 1
fi

# The health check's login: mosquitto_sub reads $XDG_CONFIG_HOME/mosquitto_sub (compose mounts
# this file there), one option per line. Root in the broker's container reads it.
monitor_password=$(value_of MQTT_MONITOR_PASSWORD)
printf -- '-u monitor\n-P %s\n' "$monitor_password" > "$work/monitor-login"
chmod 600 "$work/monitor-login"

# The broker reads the password file through a bind mount as $broker_uid: owned by that uid
# and readable by nobody else (salted PBKDF2-SHA512 hashes, but hashes of every login).
users=$(wc -l < "$plain" | tr -d ' ')
chmod 600 "$plain"
case "$give" in
    chown) chown "$broker_uid:$broker_uid" "$plain" ;;
    docker) docker run --rm -v "$work:/work" "$mosquitto_image" \
                chown "$broker_uid:$broker_uid" /work/passwords ;;
esac
mv "$work/monitor-login" "$monitor_file.tmp"
mv "$monitor_file.tmp" "$monitor_file"
mv "$plain" "$output.tmp"
mv "$output.tmp" "$output"
echo "make-passwords: wrote $output ($users users, $devices of them devices) and $monitor_file"
