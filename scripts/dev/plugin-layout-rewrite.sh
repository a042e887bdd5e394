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
        git_source        => "gittree",
        printer           => "crate::output::printer",
        report            => "crate::output::report",
        unified_diff      => "crate::output::unified_diff",
        redact            => "renderer::redact",
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
        "cli::KubeArgs"           => "crate::cluster",
        "cli::RequestTimeout"     => "crate::cluster",
        "cli::OutputArgs"         => "crate::output",
        "cli::ColorChoice"        => "crate::output",
        "cli::RenderArgs"         => "crate::commands::render",
        "cli::OutputFormat"       => "crate::commands::render",
        "cli::Reorder"            => "crate::commands::render",
        "cli::VersionArgs"        => "crate::commands::version",
        "cli::CompletionArgs"     => "crate::commands::completion",
        "cli::CompletionShell"    => "crate::commands::completion",
        "tracked::LocalRepo"      => "crate::git::local_repo",
        "tracked::HeadRelation"   => "crate::git::local_repo",
        "tracked::RelationState"  => "crate::git::local_repo",
        "tracked::short"          => "crate::git::local_repo",
        "tracked::resolve_target" => "crate::git::local_repo",
        # Now takes the revision annotation as a fourth argument; the plugin passes None.
        "desired::decorate"       => "renderer::protocol",
    );
    # Old module names that are now folders: their new submodules are not old paths.
    %folder = (release => { map { $_ => 1 } qw(rules plan repo) });
    # An item is also found under the new path of its module (`crate::cluster::tracked::short`).
    for my $k (keys %item) {
        my ($mod, $name) = split /::/, $k;
        (my $moved = $module{$mod} // "") =~ s/^crate:://;
        $item{"${moved}::$name"} = $item{$k} if $moved =~ /::/;
    }
    sub localize { my ($t, $prefix) = @_; $t =~ s/^crate(?=::)/$prefix/; $t }
    # (prefix, module path, first item segment) -> new module path, or undef when unchanged.
    sub target {
        my ($prefix, $mod, $first) = @_;
        return localize($item{"${mod}::$first"}, $prefix) if defined $first && $item{"${mod}::$first"};
        return undef if $mod =~ /::/ || !$module{$mod};
        return undef if defined $first && $folder{$mod} && $folder{$mod}{$first};
        return localize($module{$mod}, $prefix);
    }
    sub last_segment { my @s = split /::/, $_[0]; $s[-1] }
}
my %self_renamed;
# `use crate::{a::B, c};` at the root: one `use` a path when any of them moved, rewritten below.
s{\buse (crate|plugin)::\{([^{}]*)\};}{
    my ($prefix, $list) = ($1, $2);
    my @its = grep { length } map { s/^\s+|\s+$//gr } split /,/, $list;
    my $moved = grep { my ($m, $f) = /^(\w+)(?:::(\w+))?/; $f && target($prefix, $m, $f) } @its;
    $moved ? join("\n", map { "use ${prefix}::$_;" } @its) : $&;
}ge;
# `use crate::m::{a, b::c, self};`: the group may split over several new modules.
s{\buse (crate|plugin)((?:::\w+)+)::\{([^{}]*)\};}{
    my ($prefix, $mod, $list) = ($1, substr($2, 2), $3);
    my (%groups, @order);
    for my $it (grep { length } map { s/^\s+|\s+$//gr } split /,/, $list) {
        my ($first) = $it =~ /^(\w+)/;
        my $t = target($prefix, $mod, $first eq "self" ? undef : $first) // "${prefix}::$mod";
        if ($first eq "self" && $mod !~ /::/ && last_segment($t) ne $mod) {
            $self_renamed{$mod} = last_segment($t);
        }
        push @order, $t unless $groups{$t};
        push @{ $groups{$t} }, $it;
    }
    @order == 1 && $order[0] eq "${prefix}::$mod" ? $& : join "\n", map {
        my @its = @{ $groups{$_} };
        @its > 1 ? "use $_\::{" . join(", ", @its) . "};" : $its[0] eq "self" ? "use $_;" : "use $_\::$its[0];"
    } @order;
}ge;
# Every other path: `crate::m`, `crate::m::Item`, `plugin::m::sub::item` (use lines, code, docs).
s{\b(crate|plugin)((?:::\w+)+)}{
    my ($prefix, @seg) = ($1, split /::/, substr($2, 2));
    my $out;
    for my $i (reverse 1 .. $#seg) {
        my $t = target($prefix, join("::", @seg[0 .. $i - 1]), $seg[$i]) // next;
        $out = join "::", $t, @seg[$i .. $#seg];
        last;
    }
    if (!defined $out && @seg == 1) {
        my $t = target($prefix, $seg[0], undef);
        $out = join "::", $t, @seg[1 .. $#seg] if defined $t;
    }
    $out // $&;
}ge;
# Items split out of a module still named through its `self` import (`tracked::short`).
for my $k (keys %item) {
    next if $k =~ /::.*::/;
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
