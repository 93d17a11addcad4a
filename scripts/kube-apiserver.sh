#!/usr/bin/env bash
# Print the path of a kube-apiserver binary, building it once when the cache has none.
#
# The Kubernetes tests validate `opea-chat export kubernetes` against a real API server, but
# no registry reachable from here ships one. Debian bookworm does ship the `kubernetes` SOURCE
# package (1.20.2, its Go dependencies vendored) and Go 1.19, so this builds kube-apiserver
# from them, offline apart from apt: about 15-20 min on 2 cores, 1.4 GB RAM, 3.1 GB of scratch
# space that is removed afterwards. The binary is kept in ~/.cache/opea-chat/ (outside the
# repository), so only a new machine builds again. etcd and kubectl come from Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.20.2
CACHE=${OPEA_CHAT_CACHE:-$HOME/.cache/opea-chat}
dest=$CACHE/kube-apiserver-$VERSION
binary=$dest/kube-apiserver
if [ -x "$binary" ]; then
    echo "$binary"
    exit 0
fi

# golang-github-modern-go-reflect2-dev: the vendored reflect2 1.0.1 crashes under Go 1.19
# (`fatal error: fault ... reflect2.UnsafeIterate`) on the first custom resource; Debian's
# 1.0.2 replaces it below.
# rsync: the build copies its code generators with it.
scripts/apt-install.sh golang-go golang-github-modern-go-reflect2-dev dpkg-dev make rsync >&2

mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/kube-apiserver-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT

# The source comes through a private apt configuration (one deb-src line, its own lists and
# cache), so the machine's apt sources stay as they are. Same mirror as the machine's.
mirror=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\([^ ]*\/debian\)$/\1/p' \
    /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)}
mirror=${mirror:-http://deb.debian.org/debian}
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial"
echo "deb-src $mirror bookworm main" > "$work/apt/sources.list"
apt_private=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache")
# apt's download user cannot write into a private folder of root's; download as the caller.
[ "$(id -u)" -ne 0 ] || apt_private+=(-o "APT::Sandbox::User=root")
echo "Building kube-apiserver $VERSION once into $dest (about 15-20 min)" >&2
apt-get "${apt_private[@]}" -qq update >&2
(cd "$work" && apt-get "${apt_private[@]}" -qq source --download-only kubernetes >&2)
(cd "$work" && dpkg-source --no-check -x kubernetes_*.dsc src >&2)

reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
vendored=$work/src/vendor/github.com/modern-go/reflect2
rm -rf "$vendored"
mkdir -p "$vendored"
find "$reflect2" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
    -exec cp {} "$vendored/" \;

# As Debian's own build does (debian/rules): a GOPATH holding the tree as k8s.io/kubernetes.
# No git tree: the version stamp comes from the KUBE_GIT_* variables instead.
mkdir -p "$work/src/.go/src/k8s.io"
ln -s ../../.. "$work/src/.go/src/k8s.io/kubernetes"
(cd "$work/src" && env CGO_ENABLED=0 GOCACHE="$work/gocache" GOPATH="$work/src/.go" \
    KUBE_GIT_VERSION="v$VERSION" KUBE_GIT_TREE_STATE=clean \
    KUBE_GIT_COMMIT=faecb196815e248d3ecfb03c680a4507229c2a56 \
    make WHAT=cmd/kube-apiserver >&2)

mkdir -p "$dest"
cp "$work/src/_output/local/bin/linux/"*/kube-apiserver "$binary.partial"
mv "$binary.partial" "$binary"
echo "$binary"
