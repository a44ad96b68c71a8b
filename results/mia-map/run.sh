#!/usr/bin/env bash
# Where membership poisoning works: the base of results/mia-table (MNIST, 10 clients x 600,
# cnn, 12 rounds, attacks from round 4, seed 1), one factor varied per table.
set -euo pipefail
cd "$(dirname "$0")/../.."
fl=${FL:-./target/debug/fl}
base=(--datasets mnist --set rounds=12 --set mia.start_round=4 --set test_samples=2000 --jobs 2 -q)
# How many of the 10 clients are malicious.
$fl experiment mia-table "${base[@]}" --partitions iid --attacks fedpoisonmia,gradient-ascent \
    --aggregators fedavg,atm --vary mia.malicious=1,3,5 --out results/mia-map/malicious
# How much members are overfitted: fewer samples per client, more local epochs.
$fl experiment mia-table "${base[@]}" --partitions iid --attacks fedpoisonmia,passive \
    --aggregators fedavg,atm --vary partition.samples_per_client=100,600 --vary train.epochs=1,5 \
    --out results/mia-map/overfit
# How far the crafted update may be scaled (alpha_max), IID and Dirichlet 0.5.
$fl experiment mia-table "${base[@]}" --partitions iid,dirichlet-0.5 --attacks fedpoisonmia \
    --aggregators fedavg,atm --vary mia.alpha_max=1,10,100 --out results/mia-map/alpha
# Longer training: 40 rounds, attacks from round 4, 1 or 3 malicious clients.
$fl experiment mia-table "${base[@]}" --set rounds=40 --partitions iid \
    --attacks fedpoisonmia,passive --aggregators fedavg,atm --vary mia.malicious=1,3 \
    --out results/mia-map/long
