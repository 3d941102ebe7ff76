// crsInstrument: check the image, validate and compile the policy, push <tag>-layered.
// Help: crsInstrument.txt. Runs crs-ci through crsCi.groovy.
def call(Map cfg = [:]) {
    crsCi.run('instrument', 'crsInstrument', cfg)
}
