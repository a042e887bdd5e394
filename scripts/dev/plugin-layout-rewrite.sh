#!/usr/bin/env bash
# Rewrites paths into the plugin's old flat layout (`crate::printer::Printer`,
# `crate::cli::KubeArgs`, `crate::tracked::LocalRepo` …) to where they live now
# (`crate::output::printer::Printer`, `crate::cluster::KubeArgs`, `crate::git::local_repo::LocalRepo`).
#
# For code written against the old layout on another branch: run it after the merge, then
# `cargo fmt`. Idempotent: new paths are left alone, so running it twice changes nothing.
#
#   scripts/dev/plugin-layout-rewrite.sh [FILE|DIR ...]   (default: plugin/src plugin/tests)
set -euo pipefail
cd "$(dirname "$0")/../.."

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(plugin/src plugin/tests)

find "${targets[@]}" -name '*.rs' -print0 | xargs -0 -r perl -0777 -i -pe '
BEGIN {
    # Whole modules that moved. A target not starting with `crate::` is another crate.
    %module = (
        kube_context      => "crate::cluster::kube_context",
        session           => "crate::cluster::session",
        live              => "crate::cluster::live",
        tracked           => "crate::cluster::tracked",
        blame             => "crate::git::blame",
        printer           => "crate::output::printer",
        report            => "crate::output::report",
        unified_diff      => "crate::output::unified_diff",
        desired           => "crate::plan::desired",
        change_plan       => "crate::plan::change_plan",
        backfill_edit     => "crate::plan::backfill_edit",
        install_manifests => "crate::install::manifests",
        install_live      => "crate::install::live",
        release           => "crate::release::rules",
        release_plan      => "crate::release::plan",
        release_repo      => "crate::release::repo",
    );
    # Items that left their module (the module itself stayed or moved elsewhere).
    %item = (
    );
    # Old module names that are now folders: their new submodules are not old paths.
    %folder = (release => { map { $_ => 1 } qw(rules plan repo) });
    sub target {    # (prefix, module, first item segment) -> new module path or undef
        my ($prefix, $mod, $first) = @_;
        return undef if defined $first && $folder{$mod} && $folder{$mod}{$first};
        my $t = (defined $first && $item{"${mod}::$first"}) || $module{$mod};
        return undef unless defined $t;
        $t =~ s/^crate(?=::)/$prefix/;
        return $t;
    }
    sub last_segment { my @s = split /::/, $_[0]; $s[-1] }
}
my %self_renamed;
# `use crate::m::{a, b::c, self};` — the group may split over several new modules.
s{\buse (crate|plugin)::(\w+)::\{([^{}]*)\};}{
    my ($prefix, $mod, $list) = ($1, $2, $3);
    my (%groups, @order);
    for my $it (grep { length } map { s/^\s+|\s+$//gr } split /,/, $list) {
        my ($first) = $it =~ /^(\w+)/;
        my $t = target($prefix, $mod, $first eq "self" ? undef : $first) // "${prefix}::$mod";
        if ($first eq "self" && last_segment($t) ne $mod && $t ne "${prefix}::$mod") {
            $self_renamed{$mod} = last_segment($t);
        }
        push @order, $t unless $groups{$t};
        push @{ $groups{$t} }, $it;
    }
    join "\n", map {
        my @its = @{ $groups{$_} };
        @its == 1 && $its[0] ne "self" ? "use $_\::$its[0];" : "use $_\::{" . join(", ", @its) . "};"
    } @order;
}ge;
# Every other path: `crate::m`, `crate::m::Item`, `plugin::m::item` (use lines, code, docs).
s{\b(crate|plugin)::(\w+)(?:::(\w+))?}{
    my ($prefix, $mod, $first) = ($1, $2, $3);
    my $t = target($prefix, $mod, $first);
    defined $t ? $t . (defined $first ? "::$first" : "") : $&;
}ge;
# Items split out of a module still named through its `self` import (`tracked::short`).
for my $k (keys %item) {
    my ($mod, $name) = split /::/, $k;
    next unless /use [\w:]*\b$mod(?:::\{[^}]*\bself\b|;)/;
    my $t = $item{$k};
    s{(?<![:\w])${mod}::${name}\b}{${t}::$name}g;
}
# A renamed module imported as `{self}` is named by its new last segment.
for my $old (keys %self_renamed) {
    my $new = $self_renamed{$old};
    s{(?<![:\w])${old}::}{${new}::}g;
}
'
