#!/bin/sh
# Start the public broker: write its bridge to the parkleit broker, then run Mosquitto.
#
#   public-bridge.sh [CONFIG]     (default /mosquitto/config/public.conf)
#
# Environment: MQTT_PUBLIC_PASSWORD (required: the parkleit broker's user `public`, which may
# read the status and service topics only), MQTT_BRIDGE_ADDRESS (default mosquitto:1883, the
# parkleit broker's services listener), MQTT_BRIDGE_DIR (default /mosquitto/bridge, a tmpfs
# that public.conf includes). The password goes into a file only the broker reads, never onto
# a command line or into the repository. Exit codes: 2 bad environment, else Mosquitto's.
set -eu

config=${1:-/mosquitto/config/public.conf}
directory=${MQTT_BRIDGE_DIR:-/mosquitto/bridge}
password=${MQTT_PUBLIC_PASSWORD:-}
[ -n "$password" ] || { echo "public-bridge: MQTT_PUBLIC_PASSWORD is not set" >&2; exit 2; }
case "$password" in *[!A-Za-z0-9._~-]*)
    echo "public-bridge: MQTT_PUBLIC_PASSWORD may hold A-Z a-z 0-9 . _ ~ - only" >&2; exit 2 ;;
esac

umask 077
cat > "$directory/bridge.conf" <<CONF
connection parkleit
address ${MQTT_BRIDGE_ADDRESS:-mosquitto:1883}
remote_username public
remote_password $password
remote_clientid parkleit-public-bridge
bridge_protocol_version mqttv311
# Subscribe on the parkleit broker, publish here; retained status comes along.
topic parkleit/v1/+/lots/+/status in 1
topic parkleit/v1/+/chargers/+/state in 1
topic parkleit/v1/+/services/+ in 1
cleansession true
restart_timeout 2 30
CONF
exec mosquitto -c "$config"
